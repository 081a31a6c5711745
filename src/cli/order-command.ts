import { type CommandIo, EXIT } from "./io.js";
import { withOperatorTools } from "./operator-session.js";
import { jsonOutput, renderTimelineText } from "./operator-text.js";

/** `followups order <orderId>`: the customer timeline of one order's purchases. */
export async function runOrder(
  orderId: string,
  options: { readonly config: string; readonly json?: boolean },
  io: CommandIo,
): Promise<number> {
  return withOperatorTools(
    options.config,
    async (tools) => {
      const timeline = await tools.order(orderId);
      io.out(options.json ? jsonOutput(timeline) : renderTimelineText(timeline));
      return EXIT.ok;
    },
    { readOnly: true },
  );
}
