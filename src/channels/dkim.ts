import { createPrivateKey } from "node:crypto";
import type { DKIMOptions } from "nodemailer";

/** DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY (PEM). */
export interface DkimSettings {
  readonly domainName: string;
  readonly keySelector: string;
  readonly privateKey: string;
}

/** nodemailer's default signed headers (RFC 4871 §5.5 list, dkim/sign.js), which it does not export. */
const NODEMAILER_DEFAULT_HEADERS = [
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
];

/**
 * Headers we sign: nodemailer's defaults plus List-Unsubscribe-Post, because RFC 8058 one-click
 * only counts when the signature covers both list headers.
 */
export const DKIM_SIGNED_HEADERS: readonly string[] = [
  ...NODEMAILER_DEFAULT_HEADERS,
  "List-Unsubscribe-Post",
];

/**
 * nodemailer DKIM options for the SMTP and outbox channels. The key is parsed here, because
 * nodemailer sends a message unsigned, without an error, when its key cannot be used.
 */
export function dkimOptions(settings: DkimSettings): DKIMOptions {
  const domainName = settings.domainName.trim();
  const keySelector = settings.keySelector.trim();
  if (!/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(domainName)) {
    throw new Error(
      `DKIM_DOMAIN must be a domain such as shop.example, got ${JSON.stringify(domainName)}`,
    );
  }
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(keySelector)) {
    throw new Error(
      `DKIM_SELECTOR must be a DNS label such as mail2026, got ${JSON.stringify(keySelector)}`,
    );
  }
  // An env var often carries the PEM with its line breaks written as "\n".
  const privateKey = settings.privateKey.includes("\n")
    ? settings.privateKey
    : settings.privateKey.replace(/\\n/g, "\n");
  let type: string | undefined;
  try {
    type = createPrivateKey(privateKey).asymmetricKeyType;
  } catch {
    throw new Error("DKIM_PRIVATE_KEY is not a readable PEM private key");
  }
  if (type !== "rsa") {
    throw new Error(
      `DKIM_PRIVATE_KEY must be an RSA key (nodemailer signs rsa-sha256), got ${type}`,
    );
  }
  return { domainName, keySelector, privateKey, headerFieldNames: DKIM_SIGNED_HEADERS.join(":") };
}
