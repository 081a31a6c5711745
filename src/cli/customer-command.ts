import { addressOfFlags } from "./address-flags.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";
import { withOperatorTools } from "./operator-session.js";
import { jsonOutput, renderTimelineText } from "./operator-text.js";

export interface CustomerOptions {
  readonly config: string;
  readonly email?: string;
  readonly phone?: string;
  readonly json?: boolean;
}

/**
 * `followups customer`: a customer's timeline, by id, or every customer who used an email address
 * or phone number (`{"customers": [...]}` with --json: an address can belong to several ids).
 */
export async function runCustomer(
  id: string | undefined,
  options: CustomerOptions,
  io: CommandIo,
): Promise<number> {
  const given = [id, options.email, options.phone].filter((value) => value !== undefined);
  if (given.length !== 1)
    throw new CommandError("name one customer: an id, --email ADDRESS or --phone E164", EXIT.usage);
  const address = addressOfFlags(options);
  return withOperatorTools(
    options.config,
    async (tools) => {
      if (id !== undefined) {
        const timeline = await tools.customer(id);
        io.out(options.json ? jsonOutput(timeline) : renderTimelineText(timeline));
        return EXIT.ok;
      }
      const timelines = await tools.customersByAddress(address ?? "");
      io.out(
        options.json
          ? jsonOutput({ customers: timelines })
          : timelines.map(renderTimelineText).join("\n"),
      );
      return EXIT.ok;
    },
    { readOnly: true },
  );
}
