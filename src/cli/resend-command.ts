import { type CommandIo, EXIT } from "./io.js";
import { operatorName, withOperatorTools } from "./operator-session.js";
import { jsonOutput, terminalText } from "./operator-text.js";

/**
 * `followups resend --step REF`: sends a sent or failed follow-up again, deliberately and once; the
 * running workers send it. Refused (exit 1) for a pending step or once its data is scrubbed.
 */
export async function runResend(
  options: {
    readonly config: string;
    readonly step: string;
    readonly by?: string;
    readonly json?: boolean;
  },
  io: CommandIo,
): Promise<number> {
  return withOperatorTools(options.config, async (tools) => {
    const result = await tools.resend(options.step, operatorName(options.by));
    io.out(
      options.json
        ? jsonOutput(result)
        : terminalText(
            `Queued ${result.ref} to be sent again (job ${result.jobId}); a running worker sends it.\n`,
          ),
    );
    return EXIT.ok;
  });
}
