import { emailOptOutRequest } from "./sms-keywords.js";

/**
 * Reading a customer's email reply: what they wrote (without the quoted original below it), and
 * whether it is an automatic answer (out of office, auto-reply) that no one wrote. Pure.
 */

/** Lines where a mail client starts quoting the message being answered. */
const QUOTE_HEADERS: readonly RegExp[] = [
  /^On .{1,300} wrote:\s*$/,
  /^Am .{1,300} schrieb .{1,300}:\s*$/,
  /^Le .{1,300} a écrit\s?:\s*$/,
  /^El .{1,300} escribió\s?:\s*$/,
  /^Il .{1,300} ha scritto\s?:\s*$/,
  /^Op .{1,300} schreef .{1,300}:\s*$/,
  /^-{2,}\s?(?:Original Message|Ursprüngliche Nachricht|Mensaje original|Message d'origine|Messaggio originale|Oorspronkelijk bericht)\s?-{2,}\s*$/i,
  /^_{10,}\s*$/,
  /^(?:From|Von|De|Van|Da)\s?: .+$/,
];

/** The reply's own words: up to the first quote header, without `>` quoted lines, trimmed. */
export function replyBody(text: string): string {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const own: string[] = [];
  for (const [i, line] of lines.entries()) {
    // A header may be wrapped over two lines ("On …, Shop" / "<hello@shop.example> wrote:").
    const wrapped = `${line.trim()} ${lines[i + 1]?.trim() ?? ""}`;
    if (QUOTE_HEADERS.some((header) => header.test(line.trim()) || header.test(wrapped))) break;
    if (line.trimStart().startsWith(">")) continue;
    own.push(line.trimEnd());
  }
  return own
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

/** Subjects of automatic answers, in English and German. */
const AUTOMATIC_SUBJECT =
  /\b(?:out of (?:the )?office|automatic reply|auto(?:matic)?[- ]?reply|autoreply|abwesenheitsnotiz|abwesenheit|automatische antwort)\b/i;

/**
 * Whether nobody wrote this: `Auto-Submitted` other than `no` (RFC 3834), `Precedence: auto_reply,
 * bulk or junk`, or an out-of-office subject.
 */
export function isAutomaticReply(mail: {
  readonly autoSubmitted?: string;
  readonly precedence?: string;
  readonly subject?: string;
}): boolean {
  const submitted = mail.autoSubmitted?.trim().toLowerCase();
  if (submitted && submitted !== "no") return true;
  const precedence = mail.precedence?.trim().toLowerCase();
  if (precedence && ["auto_reply", "bulk", "junk", "list"].includes(precedence)) return true;
  return AUTOMATIC_SUBJECT.test(mail.subject ?? "");
}

/** A reply's or forward's prefix ("Re:", "AW:", "Fwd:", "WG:", …): the subject after it is the shop's. */
const ANSWERED_SUBJECT =
  /^\s*(?:re|aw|sv|vs|antw|antwort|r|rif|odp|rv|fwd?|wg|tr|doorst)\s*(?:\[\d+\])?\s*:/i;

/**
 * Whether a subject the customer wrote asks for no more emails ("Unsubscribe" on an empty mail):
 * not one that answers or forwards ours, whose words are the shop's ("Re: Don't stop now").
 */
export function subjectAsksToStop(subject: string | undefined): boolean {
  if (subject === undefined || ANSWERED_SUBJECT.test(subject)) return false;
  return emailOptOutRequest(subject);
}
