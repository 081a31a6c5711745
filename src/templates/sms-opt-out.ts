/**
 * The line that tells a customer how to stop texts, put below the first SMS to a number. STOP is
 * honoured whatever the customer's language: by Twilio and by our webhook (domain/sms-keywords).
 */
const OPT_OUT_LINES: Readonly<Record<string, string>> = {
  en: "Reply STOP to opt out",
  de: "Antworten Sie STOP zum Abmelden",
};

/** Languages the opt-out line is written in; others get the English line. */
export const OPT_OUT_LINE_LANGUAGES = Object.keys(OPT_OUT_LINES);

/** The opt-out line for a canonical locale (de-AT gets the German line, fr the English one). */
export function smsOptOutLine(locale: string): string {
  const language = locale.split("-")[0]?.toLowerCase() ?? "en";
  return OPT_OUT_LINES[language] ?? OPT_OUT_LINES.en ?? "Reply STOP to opt out";
}
