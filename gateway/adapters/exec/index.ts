// Running programs: the one way adapters start a command and read its output (run), and the
// knockd.conf start/stop commands the intake runs for an address (runCommand).
export { runCommand } from './command.ts';
export { run } from './run.ts';
export type { RunOptions, RunResult, Runner } from './run.ts';
