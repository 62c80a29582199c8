// At most one run in flight; calls during it cause exactly one more run after it (not one each).
// For work that reads or writes a whole set (a state file, every grant in Redis): a burst of
// reasons to run collapses into two runs, and the last one starts after the last reason. Pure.

export interface Coalesced {
  /** Asks for a run; resolves when the run that covers this call has finished. */
  run(): Promise<void>;
  /** Resolves once nothing runs (or at once). */
  idle(): Promise<void>;
}

/** `work` handles its own errors (a rejection ends the loop and reaches the callers). */
export function coalesced(work: () => Promise<void>): Coalesced {
  let again = false;
  let running: Promise<void> | undefined;
  const loop = async (): Promise<void> => {
    while (again) {
      again = false;
      await work();
    }
  };
  return {
    run() {
      again = true;
      running ??= loop().finally(() => (running = undefined));
      return running;
    },
    async idle() {
      while (running) await running.catch(() => undefined);
    },
  };
}
