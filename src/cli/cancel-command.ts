import { CommandError, type CommandIo, EXIT } from "./io.js";
import { operatorName, withOperatorTools } from "./operator-session.js";
import { jsonOutput, renderCancelText } from "./operator-text.js";

export interface CancelOptions {
  readonly config: string;
  readonly step?: string;
  readonly order?: string;
  readonly customer?: string;
  readonly reason?: string;
  readonly by?: string;
  readonly json?: boolean;
}

/**
 * `followups cancel`: cancels the pending follow-ups of one step, an order or a customer, with the
 * reason and who did it (audit trail, ledger reason `operator`). Exit 1 when nothing was pending.
 */
export async function runCancel(options: CancelOptions, io: CommandIo): Promise<number> {
  const targets = [
    options.step !== undefined && { step: options.step },
    options.order !== undefined && { order: options.order },
    options.customer !== undefined && { customer: options.customer },
  ].filter((target) => target !== false);
  const [target] = targets;
  if (targets.length !== 1 || !target)
    throw new CommandError(
      "name what to cancel: --step REF, --order ID or --customer ID",
      EXIT.usage,
    );
  return withOperatorTools(
    options.config,
    async (tools) => {
      const result = await tools.cancel(target, {
        by: operatorName(options.by),
        ...(options.reason && { reason: options.reason }),
      });
      io.out(options.json ? jsonOutput(result) : renderCancelText(result));
      return EXIT.ok;
    },
    { io },
  );
}
