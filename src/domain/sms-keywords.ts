/**
 * Reading an inbound SMS as an opt-out, an opt-in, or an ordinary reply to a check-in.
 *
 * Why it is generous: the FCC's 2024 revocation rule (47 CFR 64.1200(a)(10)) lets a consumer
 * revoke consent by any reasonable means. A reply using "stop", "quit", "end", "revoke",
 * "opt out", "cancel" or "unsubscribe" is a valid revocation, and other wording must be honoured
 * when a reasonable person would read it as one. So a message that starts with a keyword is an
 * opt-out whatever follows. Why it is not more generous: an opt-out swallows the reply, so the
 * owner never reads it. "I can't stop watching it" answers "How is your new TV?"; it asks for
 * nothing to stop, and must reach the owner as a reply.
 *
 * Reading (the same for every rule): apostrophes dropped ("don't" reads "dont"); emoji and
 * pictographs read as spaces; zero-width and other invisible format characters and variation
 * selectors dropped; NFKC (fullwidth "ＳＴＯＰ", mathematical "𝐒𝐓𝐎𝐏", circled and squared "ⓈⓉⓄⓅ",
 * "🅂🅃🄾🄿"), with letters in black circles and squares read first ("🅢🅣🅞🅟", "🆂🆃🅾🅿", though 🅾 and
 * 🅿 are emoji); lower case; Cyrillic and Greek letters that look Latin, and small capitals, read as
 * the Latin letter ("SТОP" with a Cyrillic Т and О, "ꜱᴛᴏᴘ"); sentences
 * split at `. ! ? ;` and line breaks, a phone's signature as the last line dropped ("Sent from my
 * iPhone", "Enviado desde mi…", "Envoyé de mon…"); other punctuation and symbols read as spaces ("opt-out" reads
 * "opt out"); whitespace collapsed. Words match whole: "cancelled", "stops" and "quite" are not
 * keywords.
 *
 * Opt-out, in this order:
 * 1. The whole message, spaces removed, is a keyword: STOP, STOPALL, UNSUBSCRIBE, UNSUB, CANCEL,
 *    END, QUIT, REVOKE, OPTOUT, and the German STOPP, STOPPEN, ABMELDEN, ABBESTELLEN, AUSTRAGEN,
 *    AUFHÖREN ("S T O P" and "stop all" as before), and, as the whole message only ("please"
 *    or "thanks" words around it allowed, and the word said again: "Alto por favor gracias",
 *    "Alto alto"), the French ARRET (ARRÊT), required in
 *    Canada, ARRÊTE, ARRÊTEZ, Spanish ALTO, NO MÁS and other Spanish, French, Italian, Portuguese
 *    and Dutch keywords, and English REMOVE and NO MORE (WHOLE_MESSAGE_ONLY). The stop sign 🛑
 *    reads as STOP on its own, as a sentence of its own or in a phrase (stopSignOptOut).
 * 2. The first sentence starts with a keyword (or "opt out"), after any of please, pls, bitte,
 *    kindly, just, ok: "Stop please", "STOP!!!", "Unsubscribe me", "Unsub me", "Opt out of
 *    everything", "Stop the deliveries" (STOP first is taken at its word). Not
 *    when the keyword is plainly another verb: "stop by/in/at/off/over/round/working", "end of",
 *    "end up", "quit working", "quit on", or "cancel my order" (and purchase, delivery, booking,
 *    return, refund...: a request about the order, for the owner to read).
 * 3. A later sentence is only a keyword, with please, now, it, thanks or bitte at most:
 *    "Love the TV. Stop."
 * 4. A phrase anywhere in a sentence that asks for the messages to end, unless a negation (dont,
 *    do not, cant, wont, never, not, nicht, nie...) comes just before it: "stop texting me",
 *    "stop sending me messages", "cancel my messages", "no more texts", "don't text me again",
 *    "I don't want any more messages", "how do I unsubscribe", "I want to opt out", "remove me",
 *    calls as well as texts ("don't call me again", "do not text or call me", "no more calls",
 *    "stop calling me", "nicht mehr anrufen"), "don't send me any more texts", "I said stop",
 *    "take me off your list", "leave me alone", "can you please stop?", "I revoke my consent";
 *    German "keine SMS mehr", "keine weiteren Nachrichten", "mich abmelden", "SMS abbestellen",
 *    "melden Sie mich ab", "schreiben Sie mir nicht mehr", "hören Sie auf, mir zu schreiben",
 *    "hören Sie auf, mich anzurufen", "lassen Sie mich in Ruhe" (ending its sentence).
 *    "Unsubscribe" and "opt out" followed by "of"/"from" count only when what follows is the
 *    messages or a list: "opt out of the extended warranty" is a question about the warranty.
 *    Spanish and French requests naming the messages, and German "hör auf" as a sentence, read
 *    without accents (FOREIGN_PHRASES).
 *
 * Not opt-outs: a keyword in the middle of a sentence in another sense ("I can't stop smiling",
 * "Will you stop by?", "The end of the cable is loose"), negations ("don't stop", "do not stop",
 * "never stop", "nicht stoppen", "Please don't stop the offers"), and other words ("stops",
 * "endlich", "cancelled"). CANCEL, END and QUIT are Twilio's opt-outs as the whole message (or its
 * first words), but a question or remark with them inside is about the order and goes to the owner
 * as a reply: "Can I cancel my order?", "Can I cancel?", "When does the warranty end?". A lone "STOP" after other words without a sentence break ("Thanks,
 * stop") is not recognised either: a comma list such as "play, stop, rewind" is more likely there.
 *
 * Opt-in: only the whole message, spaces removed, being START or UNSTOP (Twilio's keywords,
 * unchanged). YES, Twilio's third, opts a suppressed number back in and is otherwise an answer to
 * the check-in ("Yes love it" is always a reply).
 *
 * Help: only the whole message being the one word HELP or INFO, Twilio's default help keywords,
 * as Twilio reads them and answers them itself with the account's help message ("Help!", "info.",
 * "ＨＥＬＰ": any case, fullwidth or styled letters, surrounding spaces and punctuation), or a
 * message Twilio's Advanced Opt-Out marks `OptOutType=HELP` (the shop's own help keywords). Not
 * read as generously as the STOP words: a help keyword is not filed, so one Twilio does not answer
 * ("HELP 😡", "H E L P", "Help" and a phone's signature: not a single word) would reach no one, and
 * is a reply. "Help please" and "Help! The screen went black" ask the shop, and are replies.
 */

/**
 * `opt-in-if-suppressed`: YES. Twilio reads it as an opt-in, but to "Is all well?" it is an
 * answer: it opts a number back in only when the number is suppressed, and is a reply otherwise.
 * `help`: HELP or INFO, which Twilio answers itself; neither a change of subscription nor a reply.
 */
export type SmsKeyword = "opt-out" | "opt-in" | "opt-in-if-suppressed" | "help" | undefined;

/** Opt-out keywords, as they read after normalisation. */
const OPT_OUT_KEYWORDS = [
  "stop",
  "stopall",
  "unsubscribe",
  "unsub",
  "cancel",
  "end",
  "quit",
  "revoke",
  "optout",
  "opt out",
  "stopp",
  "stoppen",
  "abmelden",
  "abbestellen",
  "austragen",
  "aufhören",
  "aufhoeren",
];
/**
 * Whole-message opt-outs only, as written without accents (they are read with and without):
 * ARRET (ARRÊT), the French keyword carriers require beside STOP in Canada, with ARRÊTE,
 * ARRÊTEZ and ARRETT (which Twilio's Proxy also drops as opt-outs), and the usual keywords of
 * other languages a shop's customers may write in: Spanish ALTO, BAJA (as in "darme de baja"),
 * PARAR, CANCELAR, DESUSCRIBIR, NO MÁS; French DÉSABONNER, DÉSINSCRIRE, DÉSINSCRIPTION; Italian
 * BASTA, DISISCRIVI(MI), CANCELLAMI; Portuguese PARAR, SAIR, CANCELAR, DESCADASTRAR; Dutch
 * AFMELDEN, UITSCHRIJVEN; and English REMOVE (a carrier opt-out keyword at AWS) and NO MORE. As a
 * first word or within a sentence they are too often a reply ("Arrêt de l'écran après deux
 * jours", "La calidad es baja", "Basta poco per montarlo", "El volumen está muy alto", "Remove
 * the stand first?", "No more problems since the update").
 */
const WHOLE_MESSAGE_ONLY = [
  "arret",
  "arrete",
  "arretez",
  "arrett",
  "alto",
  "nomas",
  "nomore",
  "remove",
  "baja",
  "darmedebaja",
  "darsedebaja",
  "parar",
  "cancelar",
  "desuscribir",
  "desuscribirme",
  "desabonner",
  "desinscrire",
  "desinscription",
  "basta",
  "disiscrivi",
  "disiscrivimi",
  "cancellami",
  "sair",
  "descadastrar",
  "afmelden",
  "uitschrijven",
];
const OPT_OUT_COMPACT = new Set([
  ...OPT_OUT_KEYWORDS.map((keyword) => keyword.replaceAll(" ", "")),
  ...WHOLE_MESSAGE_ONLY,
]);
const ACCENTS = /\p{M}/gu;
/**
 * A whole-message keyword with a "please" or a "thanks" around it, in the keyword's languages
 * ("Alto por favor", "Arrêtez SVP", "Basta grazie", "No more please"), spaces removed.
 */
const COMPACT_COURTESY =
  /^(?:please|pls|porfavor|porfa|svp|silvousplait|silteplait|perfavore|bitte)*(.+?)(?:please|pls|porfavor|porfa|svp|silvousplait|silteplait|perfavore|bitte|thanks|thankyou|gracias|merci|grazie|obrigado|obrigada|danke|bedankt)*$/u;
/** A keyword said again ("Alto alto", "ARRÊTE ARRÊTE"), spaces removed: read once. */
const REPEATED = /^(.+?)\1+$/u;
/**
 * A phone's signature line under the words ("Sent from my iPhone", "Enviado desde mi Samsung",
 * "Envoyé de mon iPhone", "Von meinem iPhone gesendet"), read without accents: not the
 * customer's words, so "Alto" above it is the whole message.
 */
const SIGNATURE =
  /^(?:sent (?:from|with|via) (?:my )?|enviado (?:desde|de|do) (?:mi |meu |o )?|envoye (?:de|depuis) (?:mon |ma )?|von meinem |gesendet von |inviato da |verzonden (?:met|vanaf|van) (?:mijn )?|get outlook for )/u;
const OPT_IN_COMPACT = new Set(["start", "unstop"]);
/** Twilio's default help keywords, which it answers itself with the account's help message. */
const TWILIO_HELP = new Set(["HELP", "INFO"]);

const APOSTROPHES = /['’‘ʼ`´＇]/gu;
const PICTOGRAPHS = /\p{Extended_Pictographic}|\p{Emoji_Presentation}|\p{Emoji_Modifier}|\u20E3/gu;
/** Format characters (U+200B-U+200D, U+2060, U+FEFF, soft hyphen, bidi marks) and variation selectors. */
const INVISIBLE = /\p{Cf}|\p{Variation_Selector}/gu;
const SENTENCE_BREAK = /[.!?;\n\r\u3002]+/u;
/**
 * Cyrillic and Greek letters that look like Latin ones, as they read after lower-casing ("SТОP"
 * typed with a Cyrillic Т and О, "ΕΝD" with Greek capitals): read as the Latin letter. NFKC keeps
 * them apart. A message in those scripts does not turn into English words by it.
 */
const LOOKALIKES: Readonly<Record<string, string>> = {
  а: "a",
  в: "b",
  е: "e",
  ё: "e",
  к: "k",
  м: "m",
  н: "h",
  о: "o",
  р: "p",
  с: "c",
  т: "t",
  у: "y",
  х: "x",
  ѕ: "s",
  і: "i",
  ї: "i",
  ј: "j",
  ԁ: "d",
  ԛ: "q",
  ԝ: "w",
  һ: "h",
  ӏ: "l",
  α: "a",
  β: "b",
  ε: "e",
  ζ: "z",
  η: "h",
  ι: "i",
  κ: "k",
  μ: "m",
  ν: "n",
  ο: "o",
  ρ: "p",
  τ: "t",
  υ: "y",
  χ: "x",
  // Small capitals ("ꜱᴛᴏᴘ", as "fancy text" generators write it): NFKC keeps them apart too.
  ᴀ: "a",
  ʙ: "b",
  ᴄ: "c",
  ᴅ: "d",
  ᴇ: "e",
  ꜰ: "f",
  ɢ: "g",
  ʜ: "h",
  ɪ: "i",
  ᴊ: "j",
  ᴋ: "k",
  ʟ: "l",
  ᴍ: "m",
  ɴ: "n",
  ᴏ: "o",
  ᴘ: "p",
  ꞯ: "q",
  ʀ: "r",
  ꜱ: "s",
  ᴛ: "t",
  ᴜ: "u",
  ᴠ: "v",
  ᴡ: "w",
  ʏ: "y",
  ᴢ: "z",
};
const LOOKALIKE = new RegExp(`[${Object.keys(LOOKALIKES).join("")}]`, "gu");
/**
 * Capital letters in black circles and squares ("🅢🅣🅞🅟", "🆂🆃🅾🅿"), which NFKC leaves as they are
 * (it reads the plain circled and squared ones, "ⓈⓉⓄⓅ", "🅂🅃🄾🄿"), and some of which are emoji
 * (🅾, 🅿): read as the letter before emoji are read as spaces. Each range runs A to Z.
 */
const NEGATIVE_ENCLOSED = /[\u{1F150}-\u{1F169}\u{1F170}-\u{1F189}]/gu;
const enclosedLetter = (letter: string) => {
  const code = letter.codePointAt(0) ?? 0;
  return String.fromCharCode(65 + ((code - (code >= 0x1f170 ? 0x1f170 : 0x1f150)) % 26));
};
const NOT_A_WORD = /[\p{P}\p{S}\p{Cc}\p{Z}\s]+/gu;

const KEYWORD = `(?:${OPT_OUT_KEYWORDS.join("|")})`;
const COURTESY = "(?:(?:please|pls|plz|bitte|kindly|just|ok|okay) )*";
/** After a pattern: the end of a word (words are separated by single spaces). */
const END = "(?![^ ])";
/** Before a pattern: the start of a word. */
const START = "(?<![^ ])";

const LEADING_KEYWORD = new RegExp(`^${COURTESY}${KEYWORD}${END}`, "u");
const ORDER =
  "(?:order|orders|purchase|delivery|booking|appointment|installation|install|return|refund|payment|warranty|item)";
const OTHER_SENSE = new RegExp(
  `^${COURTESY}(?:stop (?:by|in|at|off|over|round|around|working)|end (?:of|up)|quit (?:working|on)|` +
    `cancel (?:(?:my|the|this|that|our|an?|one|other|second|extra|last|first|new) ){0,2}${ORDER})${END}`,
  "u",
);
const KEYWORD_SENTENCE = new RegExp(
  `^${COURTESY}${KEYWORD}(?: (?:please|pls|plz|bitte|now|it|all|thanks|thank you|thx|danke))*$`,
  "u",
);

/** What the messages are called, in English and in German. */
const MESSAGES =
  "(?:texts?|txts?|text messages|messages|msgs|sms|spam|ads|offers|promos|promotions|marketing|reminders|calls|phone calls|robocalls)";
const NACHRICHTEN =
  "(?:sms|nachricht|nachrichten|texte|textnachrichten|kurznachrichten|mitteilungen|werbung|werbe sms|angebote|erinnerungen|anrufe)";
/** Ways to reach someone that "don't … me" can name (also two: "text or call"). */
const REACH = "(?:text|txt|message|msg|sms|contact|spam|call|ring|phone)";
const NEGATION =
  "(?:dont|do not|doesnt|does not|didnt|did not|cant|cannot|can not|couldnt|could not|wont|will not|" +
  "wouldnt|would not|shouldnt|should not|never|not|nicht|nie|niemals)";
const BETWEEN =
  "(?: (?:ever|you|you ever|really|please|just|want to|want you to|need to|need you to))?";
const PHRASES = [
  "(?:stop|quit) (?:texting|txting|messaging|msging|sending|contacting|spamming|bothering|pestering|harassing|calling|ringing|phoning)",
  `(?:stop|quit|cancel|end) (?:(?:all|of|the|these|those|this|your|ur|my|with) ){0,3}${MESSAGES}`,
  `no more ${MESSAGES}`,
  `(?:dont|do not)(?: ever)? ${REACH}(?: (?:or|and|nor) ${REACH})? me`,
  `never ${REACH}(?: (?:or|and) ${REACH})? me again`,
  `(?:dont|do not) send me (?:(?:any|anymore|more|further|these|your) ){0,2}${MESSAGES}`,
  "(?:i said|i told you|told you|i asked you to|i already said) stop(?: (?:it|now|already|please))?$",
  `(?:dont|do not) want (?:to (?:get|receive) )?(?:(?:any|these|your|more|the|anymore) ){0,2}${MESSAGES}`,
  "(?:unsubscribe|unsub|opt(?: me)? out|optout)(?! (?:of|from)(?![^ ]))",
  "(?:unsubscribe|unsub|opt(?: me)? out|optout) (?:of|from) (?:(?:all|these|this|the|your|ur|future|further|any|marketing) ){0,2}" +
    `(?:${MESSAGES}|lists?|mailing list|this number|(?:this|these|them|it|all|everything)$)`,
  "already (?:opted out|unsubscribed)|(?:opted out|unsubscribed) already",
  "(?:revoke|withdraw) (?:my )?consent",
  "remove (?:me|my number|my phone number|my details)",
  "delete my (?:phone )?number",
  "take (?:me|my number) off",
  "leave me alone",
  "(?:please|pls|plz) stop(?: (?:it|now|already|please))?$",
  `keine (?:weiteren ${NACHRICHTEN}|${NACHRICHTEN} mehr|mehr ${NACHRICHTEN})`,
  `(?:mich|newsletter|${NACHRICHTEN}) (?:abmelden|abbestellen|austragen)`,
  "(?:melden|melde|meldet|tragen|trage|tragt) (?:sie |du |ihr )?mich (?:bitte )?(?:ab|aus)",
  "(?:schreiben|schreib|schreibt|kontaktieren) (?:sie |du |ihr )?(?:mir|mich) (?:bitte )?nicht mehr",
  "nicht mehr (?:schreiben|anschreiben|kontaktieren|kontaktiert|angeschrieben|simsen|texten|anrufen|angerufen)",
  "(?:rufen|ruf|ruft) (?:sie |du |ihr )?mich (?:bitte )?nicht mehr an",
  "(?:hör|hört|hören|hoer|hoert|hoeren) (?:sie |du |ihr )?(?:bitte )?auf(?: (?:mir|mich))? " +
    "(?:zu (?:schreiben|simsen|texten)|anzurufen|anzuschreiben)",
  // Only as the end of its sentence: "lass mich in Ruhe überlegen" (let me think it over) is not.
  "(?:lassen sie|lass|lasst) mich (?:bitte )?in ruhe(?: (?:bitte|jetzt|danke))*$",
];
const OPT_OUT_PHRASE = new RegExp(
  `(?<!${START}${NEGATION}${BETWEEN} )${START}(?:${PHRASES.join("|")})${END}`,
  "u",
);

/** What the messages are called in Spanish and in French (read without accents). */
const MENSAJES = "(?:mensajes|msjs?|sms|textos|llamadas|promociones|publicidad|ofertas)";
const FR_MESSAGES = "(?:messages?|sms|textos?|appels|pubs?|publicites|promotions|offres|promos)";
const ES_VERB =
  "(?:envien|envies|manden|mandes|escriban|escribas|llamen|llames|contacten|contactes)";
/** Words that may close a Spanish request's sentence. */
const ES_CLOSING = "(?: (?:por favor|porfa|gracias|ya))*$";
const FR_ME = "(?:menvoyer|mecrire|mappeler|me contacter|me harceler|me spammer|me texter)";
/**
 * Spanish, French and German requests for no more messages within a sentence, read without
 * accents (apostrophes dropped: "m'envoyer" reads "menvoyer"): "No más mensajes", "Ya no me
 * envíen más mensajes", "Dejen de enviarme mensajes", "Quiero darme de baja", "Arrêtez de
 * m'envoyer des messages", "Ne m'envoyez plus de SMS", "Merci de ne plus m'appeler"; and as the
 * whole sentence "Hör auf", "Hören Sie auf", "Ya basta". What names no messages stays a reply:
 * "No más problemas", "Ne m'envoyez plus le colis", "Hör auf zu zweifeln".
 */
const FOREIGN_PHRASES = [
  `no mas ${MENSAJES}`,
  `(?:ya )?no me ${ES_VERB} (?:mas )?${MENSAJES}`,
  `(?:ya )?no me ${ES_VERB} (?:nada )?mas${ES_CLOSING}`,
  `(?<!no (?:quiero|queremos|deseo) que )(?:dejen|deje|deja|dejar) de (?:escribirme|llamarme|molestarme|contactarme|(?:enviarme|mandarme)(?:${ES_CLOSING}| (?:mas )?${MENSAJES}))`,
  "(?:darme|darse|dame|denme|deme) de baja",
  `no (?:quiero|deseo) (?:recibir |que me (?:envien|manden) )?(?:mas )?${MENSAJES}`,
  `ne veux plus (?:recevoir )?(?:de |d |des |vos |tes )?${FR_MESSAGES}`,
  "^(?:ya basta|basta ya)$",
  `(?:arretez|arrete|arreter|cessez|cesse|cesser) de ${FR_ME}`,
  `ne m(?:envoyez|envoie|ecrivez|ecris|appelez|appelle|contactez) plus(?: (?:de |d |des )?(?:${FR_MESSAGES}|rien))?$`,
  `ne m(?:envoyez|envoie|ecrivez|ecris|appelez|appelle|contactez) plus (?:de |d |des )?${FR_MESSAGES}`,
  `ne plus ${FR_ME}(?:$| (?:de |d |des )?${FR_MESSAGES})`,
  "^(?:hor|hoer|hort|hoert|horen sie|hoeren sie) (?:bitte )?auf(?: (?:bitte|damit|jetzt|danke))*$",
];
const FOREIGN_OPT_OUT_PHRASE = new RegExp(
  `(?<!${START}${NEGATION}${BETWEEN} )${START}(?:${FOREIGN_PHRASES.join("|")})${END}`,
  "u",
);

/**
 * Email replies are read more strictly than texts (emailOptOutRequest): an email is a letter, and
 * "Stop! The TV arrived broken", "cancel the second TV" or "no more emails came after the
 * confirmation" are complaints and questions, where in a text a leading STOP is an opt-out. Only
 * the whole message being one of these words, a sentence that is nothing but an unsubscribe, or
 * a phrase that names the emails or the list counts; a text's other keywords and phrases (calls,
 * "remove me", "please stop") do not.
 */
const EMAIL_WHOLE_MESSAGE = new Set([
  "stop",
  "stopall",
  "unsubscribe",
  "unsubscribeme",
  "optout",
  "optmeout",
  "stopp",
  "abmelden",
  "abbestellen",
  "austragen",
  "arret",
  "darmedebaja",
  "darsedebaja",
  "desuscribir",
  "desuscribirme",
  "desabonner",
  "desinscrire",
  "desinscription",
  "disiscrivi",
  "disiscrivimi",
  "cancellami",
  "descadastrar",
  "afmelden",
  "uitschrijven",
]);
/** What emails are called, in English and German. */
const EMAILS = "(?:e mails?|emails?|mails|newsletters?|mailings?|mailing list|marketing emails?)";
const E_NACHRICHTEN = "(?:e mails?|emails?|mails?|newsletter|werbe e mails?|werbemails?|werbung)";
const LIST = `(?:(?:(?:the|your|ur|this|all|these|my|mailing|email|e mail) ){0,2}(?:lists?|mailing list|${EMAILS.slice(3, -1)}))`;
/** Words that may close a request's sentence: "unsubscribe me please", "keine E-Mails mehr, danke". */
const CLOSING = "(?: (?:please|pls|plz|bitte|now|asap|thanks|thank you|thx|danke|for me))*$";
const EMAIL_PHRASES = [
  `(?:unsubscribe|opt(?: me)? out|optout)(?: me)?${CLOSING}`,
  `(?:unsubscribe|opt(?: me)? out|optout)(?: me)? (?:of|from) ${LIST}`,
  "(?:want|like|wish|wanted|would like|need|asked|ask) to (?:unsubscribe|opt out)",
  "(?:stop|quit) (?:e mailing|emailing|mailing) me",
  `(?:stop|quit) sending (?:me )?(?:(?:any|your|these|those|all|the|more|of) ){0,2}${EMAILS}`,
  `(?:stop|quit|cancel|end) (?:(?:all|the|these|those|this|your|ur|my) ){0,2}${EMAILS}${CLOSING}`,
  `no (?:more|further) ${EMAILS}${CLOSING}`,
  "(?:dont|do not|never) (?:e mail|email|mail) me",
  `(?:dont|do not) send me (?:(?:any|anymore|more|further|these|your) ){0,2}${EMAILS}`,
  `(?:dont|do not) want (?:to (?:get|receive) )?(?:(?:any|these|your|more|the|anymore) ){0,2}${EMAILS}`,
  `(?:remove|take) (?:me|my (?:e mail |email )?address|my email) (?:from|off) ${LIST}`,
  "(?:revoke|withdraw) (?:my )?consent",
  `keine (?:weiteren ${E_NACHRICHTEN}|${E_NACHRICHTEN} mehr|mehr ${E_NACHRICHTEN})${CLOSING}`,
  `(?:mich )?(?:vom |von |aus dem )?(?:newsletter|verteiler|${E_NACHRICHTEN}) (?:abmelden|abbestellen|austragen)`,
  "(?:melden|melde|meldet|tragen|trage|tragt) (?:sie |du |ihr )?mich (?:bitte )?(?:(?:vom|von|aus dem|aus der) (?:newsletter|verteiler|liste) )?(?:ab|aus)$",
  "(?:mailen|mailt|mail|e mailen|schreiben|schreibt) (?:sie |du |ihr )?(?:mir|mich) (?:bitte )?nicht mehr",
  `(?:senden|schicken|sendet|schickt) (?:sie |du |ihr )?mir (?:bitte )?keine ${E_NACHRICHTEN} mehr`,
];
const EMAIL_OPT_OUT_PHRASE = new RegExp(
  `(?<!${START}${NEGATION}${BETWEEN} )${START}(?:${EMAIL_PHRASES.join("|")})${END}`,
  "u",
);

/** The message as sentences of lower-case words separated by single spaces. */
function sentencesOf(body: string): string[] {
  return body
    .replace(APOSTROPHES, "")
    .replace(NEGATIVE_ENCLOSED, enclosedLetter)
    .replace(PICTOGRAPHS, " ")
    .replace(INVISIBLE, "")
    .normalize("NFKC")
    .toLowerCase()
    .replace(LOOKALIKE, (letter) => LOOKALIKES[letter] ?? letter)
    .split(SENTENCE_BREAK)
    .map((sentence) => sentence.replace(NOT_A_WORD, " ").trim())
    .filter((sentence) => sentence !== "");
}

/** The stop sign emoji, 🛑 (with or without its variation selector). */
const STOP_SIGN = /\u{1F6D1}/gu;
/** "stop stop stop" as one "stop" (🛑🛑🛑 read as words). */
const REPEATED_STOP = new RegExp(`${START}stop(?: stop)+${END}`, "gu");

/**
 * The stop sign 🛑 read as the word STOP, where a message asks for nothing else: on its own
 * ("🛑", "🛑🛑🛑", "🛑 please"), as a sentence of its own ("Love the TV. 🛑"), or in a phrase
 * ("🛑 texting me"). Not as the first word of a message that goes on: "🛑 TV broken!!" is an
 * alarm, for the owner to read. Other emoji (⛔, 🚫, ✋) are not read: to "Is all well?" they can
 * be a "no".
 */
function stopSignOptOut(body: string): boolean {
  if (!body.includes("\u{1F6D1}")) return false;
  const sentences = sentencesOf(body.replace(STOP_SIGN, " stop ")).map((sentence) =>
    sentence.replace(REPEATED_STOP, "stop"),
  );
  return sentences.some(
    (sentence) => KEYWORD_SENTENCE.test(sentence) || OPT_OUT_PHRASE.test(sentence),
  );
}

/** The sentences without a phone's signature at the end (SIGNATURE), when words come before it. */
function withoutSignature(sentences: readonly string[]): string[] {
  const last = sentences.at(-1);
  const signed =
    sentences.length > 1 &&
    last !== undefined &&
    SIGNATURE.test(last.normalize("NFD").replace(ACCENTS, ""));
  return signed ? sentences.slice(0, -1) : [...sentences];
}

/** Classifies an inbound SMS body: opt-out, opt-in, or an ordinary reply (undefined). */
export function smsKeyword(body: string): SmsKeyword {
  const sentences = withoutSignature(sentencesOf(body));
  const compact = sentences.join("").replaceAll(" ", "");
  if (OPT_OUT_COMPACT.has(compact)) return "opt-out";
  const bare = compact.normalize("NFD").replace(ACCENTS, "");
  if (OPT_OUT_COMPACT.has(bare)) return "opt-out";
  const core = bare.replace(COMPACT_COURTESY, "$1");
  if (OPT_OUT_COMPACT.has(core) || OPT_OUT_COMPACT.has(core.replace(REPEATED, "$1")))
    return "opt-out";
  if (stopSignOptOut(body)) return "opt-out";
  if (OPT_IN_COMPACT.has(compact)) return "opt-in";
  if (compact === "yes") return "opt-in-if-suppressed";
  if (TWILIO_HELP.has(twilioWord(body))) return "help";
  const first = sentences[0] ?? "";
  if (LEADING_KEYWORD.test(first) && !OTHER_SENSE.test(first)) return "opt-out";
  if (sentences.some((sentence) => KEYWORD_SENTENCE.test(sentence))) return "opt-out";
  if (sentences.some((sentence) => OPT_OUT_PHRASE.test(sentence))) return "opt-out";
  const unaccented = sentences.map((sentence) => sentence.normalize("NFD").replace(ACCENTS, ""));
  if (unaccented.some((sentence) => FOREIGN_OPT_OUT_PHRASE.test(sentence))) return "opt-out";
  return undefined;
}

/**
 * Whether the words of an email reply (the quoted original cut off: domain/email-reply) ask for
 * no more emails. The same normalisation as smsKeyword's (disguises, fullwidth and lookalike
 * letters), but stricter (see EMAIL_WHOLE_MESSAGE): the whole message an opt-out word
 * ("Unsubscribe", "STOP", "Abmelden"), or a sentence asking for the emails or the list to end
 * ("please unsubscribe me", "stop emailing me", "remove me from your mailing list", "keine
 * E-Mails mehr"), negations excepted ("I don't want to unsubscribe"). CAN-SPAM has a reply asking
 * to opt out honoured as the link is.
 */
export function emailOptOutRequest(text: string): boolean {
  const sentences = sentencesOf(text);
  const compact = sentences.join("").replaceAll(" ", "");
  if (EMAIL_WHOLE_MESSAGE.has(compact)) return true;
  if (EMAIL_WHOLE_MESSAGE.has(compact.normalize("NFD").replace(ACCENTS, ""))) return true;
  return sentences.some((sentence) => EMAIL_OPT_OUT_PHRASE.test(sentence));
}

/**
 * Whether Twilio's Advanced Opt-Out took an inbound SMS for an opt-out (its webhook's
 * `OptOutType=STOP`): its own keywords and those the shop added to its Messaging Service.
 */
export function isTwilioOptOut(optOutType: string | undefined): boolean {
  return optOutType?.trim().toUpperCase() === "STOP";
}

/**
 * Whether Twilio's Advanced Opt-Out took an inbound SMS for a help request (`OptOutType=HELP`):
 * its HELP and INFO and the help keywords the shop added to its Messaging Service.
 */
export function isTwilioHelp(optOutType: string | undefined): boolean {
  return optOutType?.trim().toUpperCase() === "HELP";
}

/**
 * Classifies an inbound SMS as smsKeyword does, taking what Twilio's Advanced Opt-Out said of it
 * (isTwilioOptOut) for an opt-out whatever its words, and a help request it marked (isTwilioHelp)
 * for one unless its words are another keyword.
 */
export function inboundSmsKeyword(message: {
  readonly body: string;
  readonly optOutType?: string;
}): SmsKeyword {
  if (isTwilioOptOut(message.optOutType)) return "opt-out";
  const keyword = smsKeyword(message.body);
  return keyword === undefined && isTwilioHelp(message.optOutType) ? "help" : keyword;
}

/** Twilio's standard opt-out keywords, which it answers itself on long codes (Advanced Opt-Out). */
const PROVIDER_CONFIRMED = new Set([
  "STOP",
  "STOPALL",
  "UNSUBSCRIBE",
  "CANCEL",
  "END",
  "QUIT",
  "REVOKE",
  "OPTOUT",
]);

/**
 * The message as Twilio reads it for its keywords: the whole of it, any case, surrounding spaces
 * and punctuation ignored.
 */
function twilioWord(body: string): string {
  return body
    .normalize("NFKC")
    .replace(/^[\s\p{P}]+|[\s\p{P}]+$/gu, "")
    .toUpperCase();
}

/**
 * Whether the provider confirms this opt-out itself: the whole message is one of its standard
 * keywords (any case, surrounding spaces and punctuation ignored). Other wording ("please stop
 * texting me") only we recognise, so only we can confirm it.
 */
export function isProviderConfirmedOptOut(body: string): boolean {
  return PROVIDER_CONFIRMED.has(twilioWord(body));
}
