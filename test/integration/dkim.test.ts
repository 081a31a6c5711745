import { createHash, generateKeyPairSync, type KeyObject, verify } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EmailMessage } from "../../src/channels/channel.js";
import { DKIM_SIGNED_HEADERS, dkimOptions } from "../../src/channels/dkim.js";
import { createSmtpEmailChannel } from "../../src/channels/email-smtp.js";
import { createOutboxChannel } from "../../src/channels/outbox.js";
import { customerHash } from "../../src/domain/address-hash.js";
import { listUnsubscribeHeaders, unsubscribeUrl } from "../../src/templates/unsubscribe-link.js";
import { type SmtpSink, startSmtpSink } from "../support/smtp-sink.js";

const FROM = '"Corner Shop" <hello@shop.example>';
const DOMAIN = "shop.example";
const SELECTOR = "fu2026";
const SECRET = "unsubscribe-secret-for-dkim-tests";

const keys = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});
const publicKey = keys.publicKey;
const dkim = dkimOptions({
  domainName: DOMAIN,
  keySelector: SELECTOR,
  privateKey: keys.privateKey,
});

function marketingEmail(followUpId: string): EmailMessage {
  const customer = customerHash("address-hash-secret-for-dkim", "cus-5120");
  const url = unsubscribeUrl("https://followups.shop.example", SECRET, customer, "email");
  return {
    channel: "email",
    followUpId,
    to: "ana@example.com",
    subject: "A discount on laptop accessories",
    text: `Ten percent off until Sunday.\n\nUnsubscribe: ${url}\n`,
    html: `<p>Ten percent off until Sunday.</p><p><a href="${url}">Unsubscribe</a></p>`,
    headers: listUnsubscribeHeaders({ url, mailto: "unsubscribe@shop.example" }),
  };
}

interface DkimVerdict {
  readonly tags: Record<string, string>;
  readonly signedHeaders: string[];
  readonly bodyHashMatches: boolean;
  readonly signatureValid: boolean;
}

/**
 * A small RFC 6376 verifier for relaxed/relaxed rsa-sha256, independent of nodemailer's signer:
 * body hash, header selection bottom-up, and the signature over the canonical header block.
 */
function verifyDkim(message: string, key: KeyObject | string): DkimVerdict {
  const raw = message.replace(/\r?\n/g, "\r\n");
  const split = raw.indexOf("\r\n\r\n");
  const headerBlock = raw.slice(0, split);
  const body = raw.slice(split + 4);
  const fields = headerBlock.split(/\r\n(?![ \t])/).map((field) => {
    const colon = field.indexOf(":");
    return { name: field.slice(0, colon).trim().toLowerCase(), raw: field };
  });
  const relaxed = (field: string, name: string) =>
    `${name}:${field
      .slice(field.indexOf(":") + 1)
      .replace(/\r\n/g, "")
      .replace(/[ \t]+/g, " ")
      .trim()}`;

  const signature = fields.find((field) => field.name === "dkim-signature");
  if (signature === undefined) throw new Error("no DKIM-Signature header");
  const tags = Object.fromEntries(
    relaxed(signature.raw, "")
      .slice(1)
      .split(";")
      .map((tag) => tag.trim())
      .filter((tag) => tag !== "")
      .map((tag) => {
        const eq = tag.indexOf("=");
        return [tag.slice(0, eq).trim(), tag.slice(eq + 1).replace(/\s+/g, "")];
      }),
  ) as Record<string, string>;

  let canonicalBody = body
    .split("\r\n")
    .map((line) => line.replace(/[ \t]+$/, "").replace(/[ \t]+/g, " "))
    .join("\r\n")
    .replace(/(\r\n)+$/, "");
  if (canonicalBody !== "") canonicalBody += "\r\n";
  const bodyHash = createHash("sha256").update(canonicalBody, "utf8").digest("base64");

  const signedHeaders = (tags.h ?? "").split(":").map((name) => name.trim().toLowerCase());
  const used = new Set<number>();
  let data = "";
  for (const name of signedHeaders) {
    for (let index = fields.length - 1; index >= 0; index--) {
      const field = fields[index];
      if (field === undefined || field.name !== name || used.has(index)) continue;
      used.add(index);
      data += `${relaxed(field.raw, name)}\r\n`;
      break;
    }
  }
  data += relaxed(signature.raw.replace(/([;\s]b=)[^;]*/, "$1"), "dkim-signature");
  const signatureValid = verify(
    "sha256",
    Buffer.from(data, "utf8"),
    key,
    Buffer.from(tags.b ?? "", "base64"),
  );
  return { tags, signedHeaders, bodyHashMatches: bodyHash === tags.bh, signatureValid };
}

function expectSignedListHeaders(raw: string): void {
  const verdict = verifyDkim(raw, publicKey);
  expect(verdict.tags).toMatchObject({ v: "1", a: "rsa-sha256", d: DOMAIN, s: SELECTOR });
  expect(verdict.signedHeaders).toEqual(
    expect.arrayContaining(["list-unsubscribe", "list-unsubscribe-post", "from", "subject"]),
  );
  expect(verdict.bodyHashMatches).toBe(true);
  expect(verdict.signatureValid).toBe(true);

  const tampered = raw.replace(
    /^List-Unsubscribe-Post: List-Unsubscribe=One-Click/m,
    "List-Unsubscribe-Post: List-Unsubscribe=Two-Clicks",
  );
  expect(tampered).not.toBe(raw);
  expect(verifyDkim(tampered, publicKey).signatureValid).toBe(false);
}

describe("DKIM signing of marketing email", () => {
  let sink: SmtpSink;
  let outboxDir: string;

  beforeAll(async () => {
    sink = await startSmtpSink();
    outboxDir = await mkdtemp(path.join(tmpdir(), "followups-dkim-"));
  });

  afterAll(async () => {
    await sink.close();
    await rm(outboxDir, { recursive: true, force: true });
  });

  it("signs List-Unsubscribe and List-Unsubscribe-Post over SMTP, verifiably", async () => {
    const channel = createSmtpEmailChannel({ smtpUrl: sink.url, from: FROM, dkim });
    try {
      const result = await channel.send(marketingEmail("ord-1-discount"));
      expect(result.ok).toBe(true);
    } finally {
      await channel.close();
    }
    const [received] = await sink.waitForMessages(1);
    if (received === undefined) throw new Error("nothing received");
    const unfolded = received.raw.replace(/\r\n[ \t]+/g, " ");
    expect(unfolded).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m);
    expect(unfolded).toMatch(
      /^List-Unsubscribe: <https:\/\/followups\.shop\.example\/unsubscribe\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+>, <mailto:unsubscribe@shop\.example\?subject=unsubscribe%20/m,
    );
    expectSignedListHeaders(received.raw);
  });

  it("signs the outbox .eml the same way", async () => {
    const channel = createOutboxChannel({ dir: outboxDir, from: FROM, dkim });
    try {
      expect((await channel.send(marketingEmail("ord-2-discount"))).ok).toBe(true);
    } finally {
      await channel.close();
    }
    const [file] = (await readdir(outboxDir)).filter((name) => name.endsWith(".eml"));
    if (file === undefined) throw new Error("no .eml written");
    expectSignedListHeaders(await readFile(path.join(outboxDir, file), "utf8"));
  });

  it("adds no signature when DKIM is not configured", async () => {
    const before = sink.messages.length;
    const channel = createSmtpEmailChannel({ smtpUrl: sink.url, from: FROM });
    try {
      expect((await channel.send(marketingEmail("ord-3-discount"))).ok).toBe(true);
    } finally {
      await channel.close();
    }
    const received = (await sink.waitForMessages(before + 1))[before];
    expect(received?.raw).not.toMatch(/^DKIM-Signature:/im);
  });
});

describe("dkimOptions", () => {
  it("extends nodemailer's defaults with List-Unsubscribe-Post", () => {
    const names = (dkim.headerFieldNames ?? "").split(":");
    expect(names).toEqual(
      expect.arrayContaining(["From", "List-Unsubscribe", "List-Unsubscribe-Post"]),
    );
    // nodemailer's default list (dkim/sign.js, "all listed fields from RFC4871 #5.5"), then ours.
    const expected = [
      "From",
      "Sender",
      "Reply-To",
      "Subject",
      "Date",
      "Message-ID",
      "To",
      "Cc",
      "MIME-Version",
      "Content-Type",
      "Content-Transfer-Encoding",
      "Content-ID",
      "Content-Description",
      "Resent-Date",
      "Resent-From",
      "Resent-Sender",
      "Resent-To",
      "Resent-Cc",
      "Resent-Message-ID",
      "In-Reply-To",
      "References",
      "List-Id",
      "List-Help",
      "List-Unsubscribe",
      "List-Subscribe",
      "List-Post",
      "List-Owner",
      "List-Archive",
      "OTP-Token",
      "List-Unsubscribe-Post",
    ];
    expect(names).toEqual(expected);
    expect([...DKIM_SIGNED_HEADERS]).toEqual(expected);
  });

  it("accepts a PEM whose line breaks were written as \\n in an env var", () => {
    const escaped = keys.privateKey.trim().replace(/\n/g, "\\n");
    const options = dkimOptions({ domainName: DOMAIN, keySelector: SELECTOR, privateKey: escaped });
    expect(options.privateKey).toBe(keys.privateKey.trim());
  });

  it.each([
    ["an unreadable key", { privateKey: "not a key" }, /DKIM_PRIVATE_KEY is not a readable PEM/],
    [
      "a non-RSA key",
      {
        privateKey: generateKeyPairSync("ed25519").privateKey.export({
          type: "pkcs8",
          format: "pem",
        }) as string,
      },
      /must be an RSA key/,
    ],
    ["a domain without a dot", { domainName: "localhost" }, /DKIM_DOMAIN/],
    ["a selector with a semicolon", { keySelector: "a;h=x" }, /DKIM_SELECTOR/],
  ])("refuses %s instead of sending unsigned mail", (_name, override, message) => {
    expect(() =>
      dkimOptions({
        domainName: DOMAIN,
        keySelector: SELECTOR,
        privateKey: keys.privateKey,
        ...override,
      }),
    ).toThrow(message);
  });
});
