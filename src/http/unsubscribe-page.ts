import type { Channel } from "../domain/events.js";

/** Headers for every HTML answer: no scripts, no framing, no token leaking through Referer. */
export const HTML_SECURITY_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
} as const;

const CHANNEL_WORDS: Record<Channel, string> = {
  email: "emails",
  sms: "text messages (SMS)",
  voice: "phone calls",
};

const STYLE =
  "body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;padding:2rem 1rem;color:#1a1a1a;background:#fafafa}" +
  "main{max-width:32rem;margin:0 auto}" +
  "button{font:inherit;padding:.6rem 1.4rem;border:2px solid #1a1a1a;border-radius:.4rem;background:#fff;cursor:pointer}" +
  "button:focus-visible{outline:3px solid #005fcc;outline-offset:2px}";

/** The GET page: says what will stop, and asks for one press of a POST button. */
export function confirmUnsubscribePage(shopName: string, channel: Channel): string {
  const shop = escapeHtml(shopName);
  const what = escapeHtml(CHANNEL_WORDS[channel]);
  return page(
    `Unsubscribe from ${shop}`,
    `<p>Press the button to stop receiving follow-up ${what} from ${shop}.</p>` +
      `<form method="post"><button type="submit">Unsubscribe</button></form>`,
  );
}

/** The answer to the POST, shown again when pressed twice. */
export function unsubscribedPage(shopName: string, channel: Channel): string {
  const shop = escapeHtml(shopName);
  const what = escapeHtml(CHANNEL_WORDS[channel]);
  return page(
    "You are unsubscribed",
    `<p role="status">You will not receive follow-up ${what} from ${shop} any more.</p>`,
  );
}

/** A refused or broken link: nothing was changed. */
export function invalidLinkPage(): string {
  return page(
    "This link is not valid",
    "<p>This unsubscribe link is not valid. Please use the link from the most recent message you received, or contact the shop.</p>",
  );
}

/** Something on our side failed; the customer may try again. */
export function unavailablePage(): string {
  return page(
    "Please try again later",
    "<p>We could not process your request just now. Nothing was changed; please try again in a few minutes.</p>",
  );
}

function page(title: string, body: string): string {
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="robots" content="noindex"><title>${title}</title><style>${STYLE}</style></head>` +
    `<body><main><h1>${title}</h1>${body}</main></body></html>\n`
  );
}

/** Text into HTML element content or a quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
