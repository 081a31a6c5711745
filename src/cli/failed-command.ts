import { DateTime } from "luxon";
import { CHANNELS } from "../domain/events.js";
import { loadRulesForCommand } from "./check-command.js";
import { CommandError, type CommandIo, EXIT, numberFlag } from "./io.js";
import { operatorName, withOperatorTools } from "./operator-session.js";
import { jsonOutput, renderFailedText } from "./operator-text.js";

export interface FailedOptions {
  readonly config: string;
  readonly since?: string;
  readonly channel?: string;
  readonly retry?: boolean;
  readonly wait?: string;
  readonly by?: string;
  readonly json?: boolean;
}

/** The longest `--wait`: an hour. */
const MAX_WAIT_SECONDS = 3600;

/**
 * `followups failed`: failed follow-ups with their reasons in plain words; `--retry` queues them
 * again for real, and `--wait` then waits for them and says how many went out or failed again
 * (exit 1 when any did).
 */
export async function runFailed(options: FailedOptions, io: CommandIo): Promise<number> {
  if (options.channel !== undefined && !(CHANNELS as readonly string[]).includes(options.channel))
    throw new CommandError(
      `--channel: expected email, sms or voice, got ${JSON.stringify(options.channel)}`,
      EXIT.usage,
    );
  const waitSeconds =
    options.wait === undefined
      ? undefined
      : numberFlag(
          "--wait",
          options.wait,
          { min: 0, aboveMin: true, max: MAX_WAIT_SECONDS, fraction: true },
          `a number of seconds above 0 and at most ${MAX_WAIT_SECONDS}, in digits with an optional fraction (such as 2 or 0.5)`,
        );
  if (waitSeconds !== undefined && !options.retry)
    throw new CommandError("--wait goes with --retry", EXIT.usage);
  const zone = (await loadRulesForCommand(options.config)).defaults.timezone;
  const since = options.since === undefined ? undefined : parseSince(options.since, zone);
  const filter = {
    ...(since !== undefined && { since }),
    ...(options.channel !== undefined && { channel: options.channel }),
  };
  return withOperatorTools(
    options.config,
    async (tools) => {
      const failed = await tools.failed(filter);
      if (!options.retry) {
        io.out(options.json ? jsonOutput({ failed }) : renderFailedText(failed));
        return EXIT.ok;
      }
      if (failed.length === 0) throw new CommandError("nothing to retry: no failed follow-ups");
      const { requeued } = await tools.retryFailed(
        { ...filter, refs: failed.map((item) => item.ref) },
        operatorName(options.by),
      );
      const outcome =
        waitSeconds === undefined
          ? undefined
          : await tools.waitForOutcome(requeued, waitSeconds * 1000);
      if (options.json) {
        io.out(
          jsonOutput({
            failed,
            requeued: requeued.length,
            refs: requeued,
            ...(outcome && { outcome }),
          }),
        );
      } else {
        io.out(
          `${renderFailedText(failed)}Re-queued ${requeued.length} follow-up${requeued.length === 1 ? "" : "s"}.\n`,
        );
        if (outcome)
          io.out(
            `After waiting: ${outcome.sent} sent, ${outcome.failed} failed again, ${outcome.pending} still pending${outcome.other > 0 ? `, ${outcome.other} ended otherwise (skipped or cancelled)` : ""}.\n`,
          );
      }
      // A script that retries and waits learns from the exit code that some failed again.
      return outcome && outcome.failed > 0 ? EXIT.invalid : EXIT.ok;
    },
    { readOnly: !options.retry },
  );
}

/** A day (YYYY-MM-DD, from its start in `zone`) or an ISO instant, as epoch ms. */
function parseSince(text: string, zone: string): number {
  const day = /^\d{4}-\d{2}-\d{2}$/.test(text)
    ? DateTime.fromISO(text, { zone })
    : DateTime.fromISO(text, { zone: "utc", setZone: true });
  if (!day.isValid)
    throw new CommandError(
      `--since: expected a date (YYYY-MM-DD) or an ISO date-time, got ${JSON.stringify(text)}`,
      EXIT.usage,
    );
  return day.toMillis();
}
