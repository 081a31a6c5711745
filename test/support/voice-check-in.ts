import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DateTime } from "luxon";
import { expect } from "vitest";
import { parseDocument } from "yaml";
import { item, purchaseInput } from "./fixtures.js";
import type { PipelineHarness } from "./pipeline-harness.js";

/** The shipped big-ticket rule with its check-in as a call, and an SMS when it is not answered. */
export async function withVoiceCheckIn(
  configDir: string,
  owners: unknown[] = [],
  after = "PT4S",
  /** `marketing`: the call is an offer (a customer who opted out of voice offers gets none). */
  purpose?: "marketing",
): Promise<void> {
  const file = path.join(configDir, "rules.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  expect(doc.getIn(["rules", 2, "id"])).toBe("big-ticket");
  doc.setIn(
    ["rules", 2, "steps", 1],
    doc.createNode({
      kind: "check-in",
      channel: "voice",
      template: "check-in-call",
      delay: "P3M",
      fallback: { channel: "sms", template: "check-in", after },
      ...(purpose && { purpose }),
    }),
  );
  doc.setIn(["owners"], doc.createNode(owners));
  await writeFile(file, doc.toString());
}

/** A TV bought three months ago to the minute by a customer with `phone`: its check-in is due now. */
export async function publishTv(
  p: PipelineHarness,
  id: string,
  phone: string,
  name = "Nina Berg",
  consent?: Record<string, boolean>,
): Promise<void> {
  const occurredAt = DateTime.utc().setZone("Europe/London").minus({ months: 3 }).toUTC();
  await p.publisher.publish(
    purchaseInput({
      id,
      orderId: `ord-${id}`,
      occurredAt: occurredAt.toISO({ suppressMilliseconds: true }) ?? "",
      customer: { id: `cus-${id}`, phone, name, email: undefined, ...(consent && { consent }) },
      items: [item("televisions", "899.00", { name: "OLED TV 55 inch" })],
      store: { id: "corner-shop", name: "Corner Shop" },
    }) as never,
  );
}

/** A voice call webhook's route for a follow-up. */
export const callRoute = (route: string, followUpId: string) =>
  `/webhooks/twilio/voice/${route}?call=${encodeURIComponent(followUpId)}`;
