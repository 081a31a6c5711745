import { domainToASCII } from "node:url";
import { asciiUrl, UNSUBSCRIBE_PATH } from "../config/public-paths.js";
import type { Channel } from "../domain/events.js";
import { signUnsubscribeToken } from "../domain/unsubscribe-token.js";

/**
 * The link for an email's footer and its List-Unsubscribe header, naming the customer by the keyed
 * hash of their id (`customerHash`: the link's length does not grow with the id, and it names no
 * customer); with the keyed hash of the address the email goes to, the opt-out covers that address
 * under any customer id. `language` (the customer's, such as `de`) is the page's language.
 */
export function unsubscribeUrl(
  publicUrl: string,
  secret: string,
  customerHash: string,
  channel: Channel,
  addressHash?: string,
  language?: string,
): string {
  const token = signUnsubscribeToken(secret, {
    customerHash,
    channel,
    ...(addressHash !== undefined && { addressHash }),
  });
  const query = language ? `?lang=${encodeURIComponent(language)}` : "";
  return asciiUrl(`${publicUrl.replace(/\/+$/, "")}${UNSUBSCRIBE_PATH}/${token}${query}`);
}

/**
 * RFC 2369 and RFC 8058 headers for a marketing email: the https link (one-click capable) and,
 * when UNSUBSCRIBE_MAILTO is set, a mailto fallback whose subject carries the same token.
 */
export function listUnsubscribeHeaders(options: {
  readonly url: string;
  readonly mailto?: string;
}): Record<string, string> {
  const targets = [`<${options.url}>`];
  if (options.mailto !== undefined && options.mailto !== "") {
    const address = options.mailto.replace(/^mailto:/i, "");
    const path = new URL(options.url).pathname;
    const token = path.slice(path.lastIndexOf("/") + 1);
    targets.push(
      `<mailto:${mailtoAddress(address)}?subject=${encodeURIComponent(`unsubscribe ${token}`)}>`,
    );
  }
  return {
    "List-Unsubscribe": targets.join(", "),
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
  };
}

/**
 * An address as RFC 6068 writes it in a mailto URI, all in ASCII: its domain in punycode (IDNA,
 * `bücher.example` → `xn--bcher-kva.example`), any other character of its mailbox name that a
 * mailto must not carry as is (other letters, `%`, `?`, `&`, …) percent-encoded in UTF-8. A header
 * of other characters is MIME-encoded whole, and its links lost to the mail providers.
 */
export function mailtoAddress(address: string): string {
  const at = address.lastIndexOf("@");
  const domain = address.slice(at + 1);
  const asciiDomain = /^[\x21-\x7e]*$/.test(domain) ? domain : domainToASCII(domain) || domain;
  const mailbox = address
    .slice(0, Math.max(0, at))
    .replace(/[^A-Za-z0-9\-._~!$'()*+,;:@]/gu, (character) => encodeURIComponent(character));
  return at < 0 ? address : `${mailbox}@${asciiDomain}`;
}
