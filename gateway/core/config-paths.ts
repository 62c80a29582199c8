// Where knockgw looks for its config when the command line names none, in this order: its own
// file, then knockd's (a drop-in replacement must start where knockd started).
export const DEFAULT_CONFIGS = ['/etc/knockgw/knockgw.yaml', '/etc/knockd.conf'] as const;
