import type { OutgoingMessage, SendResult } from "./channel.js";

/** A message for a channel the adapter does not serve: a wiring mistake the operator must see. */
export function unsupportedChannel(transport: string, message: OutgoingMessage): SendResult {
  return {
    ok: false,
    error: {
      kind: "misconfigured",
      code: "EUNSUPPORTED",
      reason: `the ${transport} transport does not send ${message.channel} messages`,
    },
  };
}

/** A send after close(): the worker is stopping, so another process (or a restart) retries it. */
export function closedChannel(transport: string): SendResult & { readonly ok: false } {
  return {
    ok: false,
    error: { kind: "transient", code: "ECLOSED", reason: `the ${transport} transport is closed` },
  };
}
