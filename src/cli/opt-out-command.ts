import type { Channel } from "../domain/events.js";
import type { OptOutReceipt, OptOutTarget } from "../operations/operator-tools.js";
import type { ShortWait } from "../store/replica-wait.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";
import { operatorName, withOperatorTools } from "./operator-session.js";
import { jsonOutput, terminalText } from "./operator-text.js";

export interface OptOutOptions {
  readonly config: string;
  readonly email?: string;
  readonly phone?: string;
  /** Comma-separated: `email,sms,voice`. */
  readonly channels?: string;
  readonly offersOnly?: boolean;
  readonly by?: string;
  readonly json?: boolean;
}

/**
 * `followups opt-out`: what a customer asks on the phone ("stop messaging me"), done as a
 * `customer.unsubscribed` event does it: by customer id (and the addresses of their purchases),
 * or by an email address or phone number whether or not a customer is known by it. Prints a
 * receipt without the address; recorded in the audit trail; running it again is harmless.
 */
export async function runOptOut(
  id: string | undefined,
  options: OptOutOptions,
  io: CommandIo,
): Promise<number> {
  const targets: OptOutTarget[] = [
    ...(id !== undefined ? [{ customer: id }] : []),
    ...(options.email !== undefined ? [{ email: options.email }] : []),
    ...(options.phone !== undefined ? [{ phone: options.phone }] : []),
  ];
  const [target] = targets;
  if (targets.length !== 1 || !target)
    throw new CommandError(
      "name whom to opt out: a customer id, --email ADDRESS or --phone E164",
      EXIT.usage,
    );
  const channels = options.channels === undefined ? undefined : channelList(options.channels);
  const by = operatorName(options.by);
  // An opt-out waits for replicas (REDIS_WAIT_REPLICAS): it must survive a failover.
  const shortWait = ({ confirmed, wanted, waited }: ShortWait) => {
    if (waited)
      io.err(
        `warning: ${confirmed} of ${wanted} replicas (REDIS_WAIT_REPLICAS) confirmed the opt-out within REDIS_WAIT_TIMEOUT_MS: ${confirmed === 0 ? "it stands on the master alone until a replica has it" : "a failover to a replica without it would lose it"}\n`,
      );
  };
  return withOperatorTools(
    options.config,
    async (tools) => {
      const receipt = await tools.optOut(target, {
        by,
        ...(channels && { channels }),
        ...(options.offersOnly && { offersOnly: true }),
      });
      io.out(options.json ? jsonOutput(receipt) : receiptText(receipt));
      return EXIT.ok;
    },
    { onReplicaShort: shortWait, io },
  );
}

/** `--channels email,sms`: each once, as named; an empty or unknown one is a usage error. */
function channelList(text: string): Channel[] {
  const names = text.split(",").map((name) => name.trim().toLowerCase());
  const wrong = names.find((name) => name !== "email" && name !== "sms" && name !== "voice");
  if (wrong !== undefined)
    throw new CommandError(
      `--channels: expected a comma-separated list of email, sms and voice, got ${JSON.stringify(wrong)}`,
      EXIT.usage,
    );
  return [...new Set(names as Channel[])];
}

const CHANNEL_WORDS: Record<Channel, string> = { email: "email", sms: "SMS", voice: "calls" };

function receiptText(receipt: OptOutReceipt): string {
  const who =
    receipt.customer !== null
      ? `customer ${JSON.stringify(receipt.customer)}`
      : `the ${receipt.address === "email" ? "email address" : "phone number"} given`;
  const already = receipt.channels.filter((channel) => !receipt.newlyOptedOut.includes(channel));
  return terminalText(
    `${[
      `Opted out ${who} at ${receipt.optedOutAt} (by ${receipt.by})`,
      `  channels:          ${receipt.channels.map((channel) => CHANNEL_WORDS[channel]).join(", ")}`,
      `  scope:             ${receipt.purposes ? "offers only (marketing steps)" : "every follow-up"}`,
      `  addresses covered: ${receipt.addressesCovered}${receipt.customer !== null ? " (of their purchases still kept, by keyed hash)" : " (by keyed hash)"}`,
      ...(already.length > 0
        ? [
            `  already opted out: ${already.map((channel) => CHANNEL_WORDS[channel]).join(", ")} (nothing counted again)`,
          ]
        : []),
      "Pending follow-ups it covers are skipped (opted-out) when they fall due.",
    ].join("\n")}\n`,
  );
}
