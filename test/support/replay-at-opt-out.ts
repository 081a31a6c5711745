import { vi } from "vitest";
import { SuppressionList } from "../../src/store/suppression-list.js";

/**
 * Runs `replay` (a text handled from the webhook spool) at the moment the next opt-out notes its
 * time (SuppressionList.noteOptOutAt), before the note is written: the race between a replayed
 * START and an opt-out being written. `run` is the opt-out; true when the replay ran.
 */
export async function replayWhileOptingOut(
  replay: (at: number) => Promise<unknown>,
  run: () => Promise<unknown>,
): Promise<boolean> {
  const noteOptOutAt = SuppressionList.prototype.noteOptOutAt;
  let replayed = false;
  const spy = vi
    .spyOn(SuppressionList.prototype, "noteOptOutAt")
    .mockImplementation(async function (this: SuppressionList, who, at) {
      if (!replayed) {
        replayed = true;
        await replay(at);
      }
      return noteOptOutAt.call(this, who, at);
    });
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return replayed;
}
