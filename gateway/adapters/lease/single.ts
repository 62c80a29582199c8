// The lease of a single node (memory store): always held until stopped.
import type { LeaderLease, Logger } from '../../ports.ts';
import { listeners } from './events.ts';

export function createSingleLease(opts: { logger: Logger }): LeaderLease {
  const subs = listeners();
  let leader = true;
  return {
    isLeader: () => leader,
    on(event, fn) {
      const off = subs.on(event, fn);
      // A listener added after the start still learns it leads.
      if (event === 'gained' && leader) queueMicrotask(() => fn('single node'));
      return off;
    },
    stop() {
      if (leader) {
        leader = false;
        subs.emit('lost', 'stopped', opts.logger);
      }
      return Promise.resolve();
    },
  };
}
