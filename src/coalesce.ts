/**
 * Coalescing of re-reads: a burst of change events must not become a burst of store reads over
 * the bridge. At most one run is in flight; triggers during it queue exactly one more run.
 * Plain TypeScript, so Node tests drive it with real promises.
 */

/** A coalesced task: `trigger()` asks for a run, `cancel()` stops everything still queued. */
export interface Coalesced {
  /** Runs now, or once more after the run in flight. */
  trigger(): void;
  /** No run starts after this, and errors of a run in flight are no longer reported. */
  cancel(): void;
  /** Resolves when no run is in flight nor queued (for tests and teardown). */
  idle(): Promise<void>;
}

/** Wraps `run` so that overlapping triggers coalesce; `onError` gets each failed run's error. */
export function coalesce(run: () => Promise<void>, onError: (error: unknown) => void): Coalesced {
  let inFlight: Promise<void> | null = null;
  let again = false;
  let cancelled = false;

  const loop = async (): Promise<void> => {
    do {
      again = false;
      try {
        await run();
      } catch (error) {
        if (!cancelled) onError(error);
      }
    } while (again && !cancelled);
  };

  return {
    trigger() {
      if (cancelled) return;
      if (inFlight) {
        again = true;
        return;
      }
      inFlight = loop().finally(() => {
        inFlight = null;
      });
    },
    cancel() {
      cancelled = true;
      again = false;
    },
    idle() {
      return inFlight ?? Promise.resolve();
    },
  };
}
