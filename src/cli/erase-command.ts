import type { ErasureReceipt } from "../operations/erase-customer.js";
import type { ShortWait } from "../store/replica-wait.js";
import { addressOfFlags } from "./address-flags.js";
import { CommandError, type CommandIo, EXIT } from "./io.js";
import { operatorName, withOperatorTools } from "./operator-session.js";
import { jsonOutput, terminalText } from "./operator-text.js";

export interface EraseOptions {
  readonly config: string;
  readonly email?: string;
  readonly phone?: string;
  readonly by?: string;
  readonly json?: boolean;
}

/**
 * `followups erase`: the right to erasure, by customer id or by every customer who used an address.
 * Prints a receipt without personal data; running it again is harmless.
 */
export async function runErase(
  id: string | undefined,
  options: EraseOptions,
  io: CommandIo,
): Promise<number> {
  const given = [id, options.email, options.phone].filter((value) => value !== undefined);
  if (given.length !== 1)
    throw new CommandError("name one customer: an id, --email ADDRESS or --phone E164", EXIT.usage);
  const address = addressOfFlags(options);
  const by = operatorName(options.by);
  // Erasure rewrites opt-outs kept under a plain id, waiting for replicas (REDIS_WAIT_REPLICAS).
  const shortWait = ({ confirmed, wanted, waited }: ShortWait) => {
    if (waited)
      io.err(
        `warning: ${confirmed} of ${wanted} replicas (REDIS_WAIT_REPLICAS) confirmed an opt-out rewritten under its keyed hash within REDIS_WAIT_TIMEOUT_MS: ${confirmed === 0 ? "it stands on the master alone until a replica has it" : "a failover to a replica without it would lose it"}\n`,
      );
  };
  return withOperatorTools(
    options.config,
    async (tools) => {
      if (id !== undefined) {
        const receipt = await tools.erase(id, { by });
        io.out(options.json ? jsonOutput(receipt) : receiptText(receipt));
        return foldersNotSearched([receipt], io);
      }
      const receipts = await tools.eraseByAddress(address ?? "", by);
      io.out(options.json ? jsonOutput({ receipts }) : receipts.map(receiptText).join("\n"));
      return foldersNotSearched(receipts, io);
    },
    { onReplicaShort: shortWait, io },
  );
}

/** Exit 1, saying which, when a folder that may hold files about the customer could not be searched. */
function foldersNotSearched(receipts: readonly ErasureReceipt[], io: CommandIo): number {
  const folders = [...new Set(receipts.flatMap((receipt) => receipt.foldersNotSearched ?? []))];
  if (folders.length === 0) return EXIT.ok;
  io.err(
    `the customer is erased from Redis, but these folders could not be searched for files about them: ${folders.join("; ")}. Run followups erase again where they can be read\n`,
  );
  return EXIT.invalid;
}

function receiptText(receipt: ErasureReceipt): string {
  const aof: Record<string, string> = {
    rewriting: "Redis is rewriting its append-only file, so the data leaves the disk too",
    off: "Redis keeps no append-only file (nothing to rewrite)",
  };
  return terminalText(
    `${[
      `Erased customer ${receipt.customer} at ${receipt.erasedAt} (by ${receipt.by})`,
      `  purchases erased:        ${receipt.purchases}`,
      `  pending steps cancelled: ${receipt.stepsCancelled}`,
      ...(receipt.stepsInFlight > 0
        ? [`  steps being sent:        ${receipt.stepsInFlight} (erase again once they are sent)`]
        : []),
      `  keys deleted:            ${receipt.keysDeleted}`,
      `  queue jobs removed:      ${receipt.jobsRemoved}`,
      `  outbox files removed:    ${receipt.outboxFilesRemoved}`,
      `  failed webhooks removed: ${receipt.spoolFilesRemoved} (this machine's WEBHOOK_SPOOL_DIR)`,
      `  discount codes revoked:  ${receipt.codesRevoked}`,
      `  opt-outs kept (hashed):  ${receipt.optOutsKept}`,
      `  ${aof[receipt.appendOnlyFile] ?? `append-only file rewrite ${receipt.appendOnlyFile}`}`,
      ...(receipt.foldersNotSearched ?? []).map((folder) => `  NOT SEARCHED: ${folder}`),
      "Kept: anonymous counts, step states, opt-outs as keyed hashes, and a keyed hash of the",
      "customer so that their events from before now are dropped when they arrive.",
    ].join("\n")}\n`,
  );
}
