import { Liquid } from "liquidjs";
import type { EventProblem } from "../domain/events.js";

/**
 * The console's pages: server-rendered HTML from liquid templates kept here (so the build ships
 * them), every `{{ value }}` escaped by default, no scripts, one stylesheet. Forms work without
 * JavaScript; each page has one h1, labelled fields and a skip link.
 */

const LAYOUT = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · followups console</title>
<link rel="stylesheet" href="/console/assets/console.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
{% if operator %}<header>
<nav aria-label="Console">
<ul>
<li><a href="/console"{% if page == "overview" %} aria-current="page"{% endif %}>Overview</a></li>
<li><a href="/console/search"{% if page == "search" %} aria-current="page"{% endif %}>Search</a></li>
<li><a href="/console/failed"{% if page == "failed" %} aria-current="page"{% endif %}>Failed</a></li>
<li><a href="/console/refused"{% if page == "refused" %} aria-current="page"{% endif %}>Refused</a></li>
<li><a href="/console/plan"{% if page == "plan" %} aria-current="page"{% endif %}>Plan preview</a></li>
<li><a href="/console/report"{% if page == "report" %} aria-current="page"{% endif %}>Report</a></li>
<li><a href="/console/audit"{% if page == "audit" %} aria-current="page"{% endif %}>Audit trail</a></li>
<li><a href="/console/queues">Queues</a></li>
</ul>
</nav>
<form class="who" method="post" action="/console/sign-out">
<span>Signed in as <bdi>{{ operator }}</bdi></span>
<input type="hidden" name="_csrf" value="{{ csrf }}">
<button type="submit">Sign out</button>
</form>
</header>{% endif %}
<main id="main">
{% if notice %}<p class="notice" role="status">{% render "text", parts: notice %}</p>{% endif %}
{% block content %}{% endblock %}
</main>
</body>
</html>`;

const SIGN_IN = `{% layout "layout" %}{% block content %}
<h1>Sign in to the followups console</h1>
{% if error %}<p class="error" role="alert">{% render "text", parts: error %}</p>{% endif %}
<form method="post" action="/console/sign-in">
<input type="hidden" name="_csrf" value="{{ csrf }}">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p class="hint">Use one of the tokens in ADMIN_TOKENS; the audit trail records the name it belongs to.</p>
{% endblock %}`;

const OVERVIEW = `{% layout "layout" %}{% block content %}
<h1>Overview</h1>
<section aria-labelledby="today">
<h2 id="today">Today ({{ zone }})</h2>
<dl class="figures">
<div><dt>Sent</dt><dd>{{ today.sent }}</dd></div>
<div><dt>Failed</dt><dd>{{ today.failed }}</dd></div>
<div><dt>Skipped</dt><dd>{{ today.skipped }}</dd></div>
<div><dt>Opt-outs</dt><dd>{{ today.optout }}</dd></div>
</dl>
</section>
<section aria-labelledby="pending">
<h2 id="pending">Pending follow-ups, next 30 days</h2>
{{ chart | raw }}
<details>
<summary>The same as a table</summary>
<table>
<caption>Pending follow-ups by due date and channel</caption>
<thead><tr><th scope="col">Date</th>{% for channel in channels %}<th scope="col">{{ channel }}</th>{% endfor %}</tr></thead>
<tbody>{% for day in pendingDays %}<tr><th scope="row">{{ day.date }}</th>{% for channel in channels %}<td>{{ day.counts[channel] | default: 0 }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>
</details>
</section>
<section aria-labelledby="health">
<h2 id="health">Queues and rules</h2>
<table>
<caption>Jobs per queue and state</caption>
<thead><tr><th scope="col">Queue</th>{% for state in jobStates %}<th scope="col">{{ state }}</th>{% endfor %}</tr></thead>
<tbody>{% for queue in queues %}<tr><th scope="row">{{ queue.name }}</th>{% for state in jobStates %}<td>{{ queue.counts[state] | default: 0 }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table>
<p>Rules version {{ rulesVersion }} (generation {{ rulesGeneration }}), templates version {{ templatesVersion }}.</p>
</section>
{% endblock %}`;

const SEARCH = `{% layout "layout" %}{% block content %}
<h1>Find a customer</h1>
<form method="get" action="/console/search" role="search">
<label for="q">Customer id, email address, phone number or order id</label>
<input id="q" name="q" value="{{ q }}" required>
<button type="submit">Search</button>
</form>
{% if error %}<p class="error" role="alert">{% render "text", parts: error %}</p>{% endif %}
{% if matches.size > 0 %}<h2>Customers using <bdi>{{ q }}</bdi></h2>
<ul>{% for id in matches %}<li><a href="{{ id | customer_path }}"><bdi>{{ id }}</bdi></a></li>{% endfor %}</ul>{% endif %}
{% endblock %}`;

const CUSTOMER = `{% layout "layout" %}{% block content %}
<h1>{% if orderId %}Order <bdi>{{ orderId }}</bdi>{% else %}Customer <bdi>{{ t.customer.id }}</bdi>{% endif %}</h1>
<section aria-labelledby="who">
<h2 id="who">Contact and consent</h2>
<dl class="facts">
<div><dt>Customer id</dt><dd>{% if orderId %}<a href="{{ t.customer.id | customer_path }}"><bdi>{{ t.customer.id }}</bdi></a>{% else %}<bdi>{{ t.customer.id }}</bdi>{% endif %}</dd></div>
<div><dt>First name</dt><dd>{% if t.customer.firstName %}<bdi>{{ t.customer.firstName }}</bdi>{% else %}not stored{% endif %}</dd></div>
<div><dt>Email</dt><dd>{% if t.customer.email %}<bdi>{{ t.customer.email }}</bdi>{% else %}not stored{% endif %}</dd></div>
<div><dt>Phone</dt><dd>{% if t.customer.phone %}<bdi>{{ t.customer.phone }}</bdi>{% else %}not stored{% endif %}</dd></div>
<div><dt>Time zone</dt><dd>{{ t.customer.timezone }}</dd></div>
{% for c in consent %}<div><dt>{{ c.channel }}</dt><dd>consent: {{ c.consent }}; opt-out: {{ c.optOut }}</dd></div>{% endfor %}
</dl>
{% unless orderId %}<p class="actions"><a href="/console/confirm?action=opt-out&amp;customer={{ t.customer.id | url_encode }}">Opt out…</a>
<a class="danger" href="/console/confirm?action=erase&amp;customer={{ t.customer.id | url_encode }}">Erase this customer…</a></p>{% endunless %}
</section>
{% if t.purchasesNotListed > 0 %}<p class="notice">The latest {{ t.purchases.size }} purchases of {{ t.purchases.size | plus: t.purchasesNotListed }}: {% if t.purchasesNotListed == 1 %}1 older one is{% else %}{{ t.purchasesNotListed }} older ones are{% endif %} not listed here. <a href="/console/search">Search</a> for an older one by its order id.</p>{% endif %}
{% for p in t.purchases %}<section aria-labelledby="p{{ forloop.index }}">
<h2 id="p{{ forloop.index }}">Purchase <bdi>{{ p.eventId }}</bdi></h2>
<p>Order {% if p.orderId %}<bdi>{{ p.orderId }}</bdi>{% else %}?{% endif %}, {{ p.occurredAt | default: "time not stored" }}{% if p.total %}, {{ p.total.amount }} {{ p.total.currency }}{% endif %}{% if p.refunded %}, refunded (<bdi>{{ p.refunded }}</bdi>){% endif %}. Details stored: {{ dataWords[p.data] }}.</p>
{% if p.items.size > 0 %}<ul class="items">{% for item in p.items %}<li>{{ item.quantity }} × <bdi>{{ item.name }}</bdi> at {{ item.unitPrice.amount }} {{ item.unitPrice.currency }}</li>{% endfor %}</ul>{% endif %}
<table>
<caption>Follow-ups of purchase <bdi>{{ p.eventId }}</bdi></caption>
<thead><tr><th scope="col">Step</th><th scope="col">State</th><th scope="col">Due (UTC)</th><th scope="col">Due (customer's time)</th><th scope="col">Attempts</th><th scope="col">Details</th><th scope="col">Actions</th></tr></thead>
<tbody>{% for s in p.steps %}<tr>
<th scope="row">{{ s.stepId }}<br><span class="muted">{{ s.channel }}, {{ s.kind }}</span></th>
<td><span class="state state-{{ s.state }}">{{ s.state }}</span></td>
<td><time datetime="{{ s.dueAt }}">{{ s.dueAt | slice: 0, 16 | replace: "T", " " }}</time></td>
<td>{{ s.dueLocal | slice: 0, 16 | replace: "T", " " }} {{ s.dueLocal | slice: 19, 6 }}</td>
<td>{{ s.attempts }}</td>
<td>{% if s.postponed %}postponed to <time datetime="{{ s.postponed.until }}">{{ s.postponed.untilLocal | slice: 0, 16 | replace: "T", " " }} {{ s.postponed.untilLocal | slice: 19, 6 }}</time>: {{ s.postponed.why }}<br>{% endif %}{% if s.reason %}<bdi>{{ s.reason.text | default: s.reason.code }}</bdi><br>{% endif %}{% if s.providerMessageId %}id <bdi>{{ s.providerMessageId }}</bdi><br>{% endif %}{% if s.delivery %}delivery: <bdi>{{ s.delivery.status }}</bdi>{% if s.delivery.unknown %} (a status this version does not know: not an outcome){% endif %}<br>{% endif %}{% for r in s.replies %}reply <bdi>{{ r.id | split: "/" | last }}</bdi> by {{ r.channel }}: “<bdi>{{ r.text }}</bdi>”{% if r.unhappy %} <strong class="unhappy">unhappy ({{ r.why }})</strong>{% endif %}{% if r.resolved %} resolved by <bdi>{{ r.resolved.by }}</bdi>{% if r.resolved.note %}: <bdi>{{ r.resolved.note }}</bdi>{% endif %}{% elsif r.unhappy %} <a href="/console/confirm?action=resolve&amp;reply={{ r.id | url_encode }}&amp;back={{ back | url_encode }}">Mark resolved…</a>{% endif %}<br>{% endfor %}{% if s.resends > 0 %}resent {{ s.resends }}×<br>{% endif %}{% if s.retries > 0 %}retried {{ s.retries }}×{% endif %}</td>
<td class="actions"><a href="/console/preview?ref={{ s.ref | url_encode }}&amp;back={{ back | url_encode }}">Preview</a>
{% if s.state == "scheduled" %}<a href="/console/confirm?action=cancel&amp;ref={{ s.ref | url_encode }}&amp;back={{ back | url_encode }}">Cancel…</a>{% endif %}
{% if s.state == "sent" or s.state == "failed" %}<a href="/console/confirm?action=resend&amp;ref={{ s.ref | url_encode }}&amp;back={{ back | url_encode }}">Resend…</a>{% endif %}</td>
</tr>{% endfor %}</tbody>
</table>
</section>{% else %}<p>No purchases stored.</p>{% endfor %}
<section aria-labelledby="audit">
<h2 id="audit">Operator actions</h2>
{% render "audit-list", entries: t.audit %}
</section>
{% endblock %}`;

const AUDIT_LIST = `{% if entries.size > 0 %}<table>
<caption>Operator actions, latest first</caption>
<thead><tr><th scope="col">When (UTC)</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">On</th><th scope="col">Details</th></tr></thead>
<tbody>{% for e in entries %}<tr><td><time datetime="{{ e.at }}">{{ e.at | slice: 0, 19 | replace: "T", " " }}</time></td><td><bdi>{{ e.by }}</bdi></td><td>{{ e.action }}</td><td><bdi>{{ e.target }}</bdi></td><td><bdi>{{ e.detail }}</bdi></td></tr>{% endfor %}</tbody>
</table>{% else %}<p>No operator actions recorded.</p>{% endif %}`;

const CONFIRM = `{% layout "layout" %}{% block content %}
<h1>{% render "text", parts: heading %}</h1>
<p>{{ question }}</p>
<form method="post" action="{{ action }}">
<input type="hidden" name="_csrf" value="{{ csrf }}">
{% for field in fields %}<input type="hidden" name="{{ field.name }}" value="{{ field.value }}">{% endfor %}
{% if askReason %}<label for="reason">Reason (kept on the step and in the audit trail)</label>
<input id="reason" name="reason" maxlength="500">{% endif %}
{% if channelChoices %}<fieldset>
<legend>Channels to stop</legend>
{% for c in channelChoices %}<label class="choice"><input type="checkbox" name="channel-{{ c.channel }}" value="on" checked> {{ c.words }}</label>
{% endfor %}</fieldset>
<fieldset>
<legend>What to stop</legend>
<label class="choice"><input type="radio" name="scope" value="all" checked> Every follow-up on those channels</label>
<label class="choice"><input type="radio" name="scope" value="marketing"> Offers only (discounts and other marketing)</label>
</fieldset>{% endif %}
{% if askNote %}<label for="note">What was done (kept with the reply and in the audit trail)</label>
<input id="note" name="note" maxlength="500">{% endif %}
<button type="submit" class="{% if danger %}danger{% endif %}">{{ confirm }}</button>
<a href="{{ back }}">Go back</a>
</form>
{% endblock %}`;

const RECEIPT = `{% layout "layout" %}{% block content %}
<h1>Customer erased</h1>
<p>Erased at {{ r.erasedAt }} by <bdi>{{ r.by }}</bdi>. The customer is now known only as <bdi>{{ r.customer }}</bdi>.</p>
<dl class="facts">
<div><dt>Purchases erased</dt><dd>{{ r.purchases }}</dd></div>
<div><dt>Pending follow-ups cancelled</dt><dd>{{ r.stepsCancelled }}</dd></div>
<div><dt>Being sent at that moment</dt><dd>{{ r.stepsInFlight }}</dd></div>
<div><dt>Keys deleted</dt><dd>{{ r.keysDeleted }}</dd></div>
<div><dt>Queue jobs removed</dt><dd>{{ r.jobsRemoved }}</dd></div>
<div><dt>Outbox files removed</dt><dd>{{ r.outboxFilesRemoved }}</dd></div>
<div><dt>Failed webhooks removed (this worker's spool)</dt><dd>{{ r.spoolFilesRemoved }}</dd></div>
<div><dt>Discount codes revoked</dt><dd>{{ r.codesRevoked }}</dd></div>
<div><dt>Opt-outs kept (as keyed hashes)</dt><dd>{{ r.optOutsKept }}</dd></div>
<div><dt>Append-only file</dt><dd>{{ r.appendOnlyFile }}</dd></div>
</dl>
<p><a href="/console/search">Back to search</a></p>
{% endblock %}`;

const FAILED = `{% layout "layout" %}{% block content %}
<h1>Failed follow-ups</h1>
{% if failed.size > 0 %}<form method="post" action="/console/failed/retry">
<input type="hidden" name="_csrf" value="{{ csrf }}">
<input type="hidden" name="through" value="{{ through }}">
<button type="submit">Retry all {{ failed.size }}</button>
</form>
<table>
<caption>Failed follow-ups, latest first</caption>
<thead><tr><th scope="col">Step</th><th scope="col">Channel</th><th scope="col">Failed at (UTC)</th><th scope="col">Attempts</th><th scope="col">Why</th><th scope="col">Action</th></tr></thead>
<tbody>{% for f in failed %}<tr><th scope="row"><bdi>{{ f.ref }}</bdi></th><td>{{ f.channel }}</td><td>{{ f.failedAt | slice: 0, 19 | replace: "T", " " }}</td><td>{{ f.attempts }}</td><td><bdi>{{ f.reason.words }}</bdi></td>
<td><form method="post" action="/console/failed/retry"><input type="hidden" name="_csrf" value="{{ csrf }}"><input type="hidden" name="ref" value="{{ f.ref }}"><button type="submit" aria-label="Retry {{ f.ref }}">Retry</button></form></td></tr>{% endfor %}</tbody>
</table>{% else %}<p>No failed follow-ups.</p>{% endif %}
{% endblock %}`;

const REFUSED = `{% layout "layout" %}{% block content %}
<h1>Refused events</h1>
<p>Events the worker did not take in, kept 30 days in the input queue's failed set: invalid ones, with every problem and its path, and those whose intake failed on every attempt, with the last error. Each came through the input queue (the publisher, <code>followups publish</code>, <code>POST /v1/events</code> or a job added by hand); an invalid event sent to <code>POST /v1/events</code> is answered 400 there and not kept. Publishing the corrected event, or the same one after a failure that was not the event's, takes it in.</p>
{% if refused.size > 0 %}<table>
<caption>Refused events, latest first{% if refused.size == limit %} (the latest {{ limit }}: <code>followups refused --limit N</code> lists more){% endif %}</caption>
<thead><tr><th scope="col">Event</th><th scope="col">Type</th><th scope="col">Refused at (UTC)</th><th scope="col">Attempts</th><th scope="col">Why</th></tr></thead>
<tbody>{% for r in refused %}<tr><th scope="row"><bdi>{{ r.eventId }}</bdi></th><td><bdi>{{ r.type }}</bdi></td><td><time datetime="{{ r.refusedAt }}">{{ r.refusedAt | slice: 0, 19 | replace: "T", " " }}</time></td><td>{{ r.attempts }}</td><td><bdi>{{ r.reason }}</bdi></td></tr>{% endfor %}</tbody>
</table>{% else %}<p>No refused events.</p>{% endif %}
{% endblock %}`;

const PLAN = `{% layout "layout" %}{% block content %}
<h1>Plan preview</h1>
<form method="post" action="/console/plan">
<input type="hidden" name="_csrf" value="{{ csrf }}">
<label for="event">A purchase.completed event (JSON)</label>
<textarea id="event" name="event" rows="14" required>{{ event }}</textarea>
<button type="submit">Show the plan</button>
</form>
{% if error %}<pre class="error" role="alert" tabindex="0">{% render "text", parts: error %}</pre>{% endif %}
{% if table %}<h2 id="plan-title">What this purchase would get</h2><pre tabindex="0" aria-labelledby="plan-title">{{ table }}</pre>{% endif %}
{% endblock %}`;

const REPORT = `{% layout "layout" %}{% block content %}
<h1>Owner report</h1>
<form method="get" action="/console/report">
<label for="since">From (first day)</label>
<input id="since" name="since" type="date" value="{{ since }}" required>
<label for="until">Until (the day after the last)</label>
<input id="until" name="until" type="date" value="{{ until }}" required>
<button type="submit">Show</button>
</form>
{% if error %}<p class="error" role="alert">{% render "text", parts: error %}</p>{% else %}
<iframe class="report" title="Owner report from {{ since }} until {{ until }}" src="/console/report/view?since={{ since }}&amp;until={{ until }}"></iframe>{% endif %}
{% endblock %}`;

const AUDIT = `{% layout "layout" %}{% block content %}
<h1>Audit trail</h1>
<p>Every cancel, resend, retry, opt-out, erasure and sign-in, kept for a year.</p>
{% render "audit-list", entries: entries %}
{% if older or newest %}<nav aria-label="Audit trail pages"><p>{% if newest %}<a href="/console/audit">Latest entries</a> {% endif %}{% if older %}<a href="{{ older }}" rel="next">Older entries</a>{% endif %}</p></nav>{% endif %}
{% endblock %}`;

const PREVIEW = `{% layout "layout" %}{% block content %}
<h1>Message of <bdi>{{ ref }}</bdi></h1>
{% if error %}<p class="error" role="alert">{% render "text", parts: error %}</p>{% else %}
{% if state == "skipped" or state == "cancelled" %}<p>Not sent: {{ state }}{% if notSentBecause %} ({{ notSentBecause }}){% endif %}. As it would have been rendered by {{ channel }}{% if to %} to <bdi>{{ to }}</bdi>{% endif %} (with today's templates).</p>
{% else %}<p>As {% if state == "scheduled" %}it will be{% else %}it was{% endif %} rendered by {{ channel }}{% if to %} to <bdi>{{ to }}</bdi>{% endif %}.</p>{% endif %}
{% if subject %}<h2>Subject</h2><p>{{ subject }}</p>{% endif %}
<h2>Text</h2>
<pre class="message" tabindex="0" aria-label="Message text">{{ text }}</pre>{% endif %}
<p><a href="{{ back }}">Back</a></p>
{% endblock %}`;

const PROBLEM = `{% layout "layout" %}{% block content %}
<h1>{% render "text", parts: heading %}</h1>
<p role="alert">{% render "text", parts: message %}</p>
<p><a href="{{ back | default: "/console" }}">Back</a></p>
{% endblock %}`;

/** The console's stylesheet: readable, high contrast, no web fonts. */
export const CONSOLE_CSS = `
:root { color-scheme: light; --ink: #111827; --muted: #4b5563; --line: #d1d5db; --accent: #1d4ed8; --danger: #b91c1c; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: var(--ink); background: #fff; }
a { color: var(--accent); }
a:focus, button:focus, input:focus, textarea:focus, summary:focus { outline: 3px solid #f59e0b; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5rem; }
.skip:focus { left: .5rem; }
header { display: flex; flex-wrap: wrap; justify-content: space-between; align-items: center; gap: 1rem; padding: .5rem 1rem; border-bottom: 1px solid var(--line); background: #f3f4f6; }
nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: 1rem; margin: 0; padding: 0; }
nav a[aria-current="page"] { font-weight: 700; color: var(--ink); }
.who { display: flex; gap: .5rem; align-items: center; margin: 0; }
main { padding: 1rem; max-width: 72rem; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.2rem; margin: 1.5rem 0 .5rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; width: 100%; }
caption { text-align: left; color: var(--muted); padding: .25rem 0; }
th, td { border: 1px solid var(--line); padding: .35rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #f3f4f6; }
label { display: block; margin: .75rem 0 .25rem; font-weight: 600; }
fieldset { border: 1px solid var(--line); border-radius: 4px; margin: .75rem 0; max-width: 32rem; }
legend { font-weight: 600; padding: 0 .25rem; }
label.choice { font-weight: 400; margin: .25rem 0; }
label.choice input { width: auto; margin-right: .5rem; }
input, textarea { font: inherit; padding: .4rem; border: 1px solid #6b7280; border-radius: 4px; width: 100%; max-width: 32rem; }
textarea { max-width: 48rem; font-family: ui-monospace, monospace; font-size: .9rem; }
button { font: inherit; margin: .5rem .5rem .5rem 0; padding: .4rem .9rem; border: 1px solid var(--accent); border-radius: 4px; background: var(--accent); color: #fff; cursor: pointer; }
.who button { margin: 0; background: #fff; color: var(--accent); }
button.danger { background: var(--danger); border-color: var(--danger); }
a.danger { color: var(--danger); font-weight: 600; }
.muted, .hint { color: var(--muted); }
.error { color: var(--danger); font-weight: 600; white-space: pre-wrap; }
.notice { border-left: 4px solid #15803d; background: #f0fdf4; padding: .5rem .75rem; }
.unhappy { color: var(--danger); }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; margin: 0; }
.figures div { border: 1px solid var(--line); border-radius: 6px; padding: .5rem 1rem; min-width: 8rem; }
.figures dt { color: var(--muted); }
.figures dd { margin: 0; font-size: 1.6rem; font-weight: 700; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
.facts div { display: contents; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.actions a { display: inline-block; margin-right: .5rem; }
pre { background: #f9fafb; border: 1px solid var(--line); padding: .75rem; overflow-x: auto; }
iframe.report { width: 100%; height: 70rem; border: 1px solid var(--line); }
svg.chart { max-width: 100%; height: auto; }
`;

const ORDER_WITHOUT_PURCHASE = `{% layout "layout" %}{% block content %}
<h1>Order <bdi>{{ o.orderId }}</bdi></h1>
<p>{% if o.purchaseArrived %}Its purchase arrived after the order was refunded in full, and was dropped: nothing was planned for it, and nothing of it is kept.{% else %}Its purchase has not arrived yet (refunds can arrive before it). Then: {{ o.awaitingPurchase }}.{% endif %}</p>
<section aria-labelledby="refunds">
<h2 id="refunds">Refunds recorded for the order</h2>
<ul>{% for r in o.refunds %}<li><bdi>{{ r.eventId }}</bdi>: {% if r.full %}the whole order{% endif %}{% if r.amount %}{{ r.amount.amount }} {{ r.amount.currency }}{% endif %}{% for item in r.items %}{% if r.amount or forloop.index > 1 %}, {% endif %}{{ item.quantity }} × <bdi>{{ item.sku }}</bdi> handed back{% endfor %}</li>{% endfor %}
{% for d in o.droppedPurchases %}<li>purchase <bdi>{{ d.eventId }}</bdi> arrived <time datetime="{{ d.arrivedAt }}">{{ d.arrivedAt | slice: 0, 16 | replace: "T", " " }} UTC</time>, after the full refund</li>{% endfor %}</ul>
</section>
{% endblock %}`;

/** A message in parts: the values `isolated` marked in it each in a `<bdi>` of its own. */
const TEXT = `{% for part in parts %}{% if part.isolated %}<bdi>{{ part.text }}</bdi>{% else %}{{ part.text }}{% endif %}{% endfor %}`;

const TEMPLATES = {
  layout: LAYOUT,
  text: TEXT,
  "sign-in": SIGN_IN,
  overview: OVERVIEW,
  search: SEARCH,
  customer: CUSTOMER,
  "order-without-purchase": ORDER_WITHOUT_PURCHASE,
  "audit-list": AUDIT_LIST,
  confirm: CONFIRM,
  receipt: RECEIPT,
  failed: FAILED,
  refused: REFUSED,
  plan: PLAN,
  report: REPORT,
  audit: AUDIT,
  preview: PREVIEW,
  problem: PROBLEM,
} as const;

export type ConsoleView = Exclude<keyof typeof TEMPLATES, "layout" | "audit-list" | "text">;

/** Marks the start and end of a value `isolated` in a message (private-use characters). */
const OPEN = "\ue000";
const CLOSE = "\ue001";

/**
 * `value` marked for a message the console shows (a notice, heading or error it composes): the
 * page draws it in a `<bdi>`, so that right-to-left text or a bidi control in it (U+202E) cannot
 * move the words around it. The markers themselves in a value are shown as U+FFFD.
 */
export function isolated(value: string): string {
  return `${OPEN}${value.replace(/[\ue000\ue001]/g, "\ufffd")}${CLOSE}`;
}

/**
 * `text` (a refusal of the operator tools) with the values it quotes, at `ranges` ([start, end)
 * offsets, in order), each `isolated`; the markers elsewhere in it are shown as U+FFFD too.
 */
export function isolatedAt(text: string, ranges: readonly (readonly [number, number])[]): string {
  const plain = (words: string) => words.replace(/[\ue000\ue001]/g, "\ufffd");
  let marked = "";
  let at = 0;
  for (const [start, end] of ranges) {
    if (start < at || end > text.length) continue;
    marked += plain(text.slice(at, start)) + isolated(text.slice(start, end));
    at = end;
  }
  return marked + plain(text.slice(at));
}

/** A value a problem quotes: a JSON string (events.ts writes every value it quotes so). */
const QUOTED_VALUE = /"(?:[^"\\]|\\.)*"/g;

/**
 * An event's problems as the plan preview shows them, one a line (as `describeProblems` writes
 * them): each path, which names the event's own keys, and each value a message quotes `isolated`,
 * so that right-to-left text or a bidi control in them cannot move the sentence after them.
 */
export function isolatedProblems(problems: readonly EventProblem[]): string {
  return problems
    .map(({ path, message }) => {
      const quotes = [...message.matchAll(QUOTED_VALUE)].map((match): [number, number] => [
        match.index,
        match.index + match[0].length,
      ]);
      return `${path ? isolated(path) : "(event)"}: ${isolatedAt(message, quotes)}`;
    })
    .join("\n");
}

/** A message's parts, the `isolated` values apart (one whose end was cut off runs to the end). */
function messageParts(text: string): { text: string; isolated: boolean }[] {
  const parts: { text: string; isolated: boolean }[] = [];
  let rest = text;
  while (rest !== "") {
    const open = rest.indexOf(OPEN);
    if (open < 0) {
      parts.push({ text: rest.replaceAll(CLOSE, ""), isolated: false });
      break;
    }
    if (open > 0) parts.push({ text: rest.slice(0, open).replaceAll(CLOSE, ""), isolated: false });
    const close = rest.indexOf(CLOSE, open);
    const end = close < 0 ? rest.length : close;
    parts.push({ text: rest.slice(open + 1, end), isolated: true });
    rest = close < 0 ? "" : rest.slice(close + 1);
  }
  return parts;
}

/** The fields a page shows as a message in parts (see `isolated`). */
const MESSAGE_FIELDS = ["notice", "heading", "error", "message"] as const;

const engine = new Liquid({
  templates: TEMPLATES,
  outputEscape: "escape",
  strictFilters: true,
  extname: "",
});
engine.registerFilter("customer_path", (id: unknown) => consolePath("customers", String(id)));

/**
 * The console page of a customer or an order (`what`: customers, orders), or an action on it
 * (`/erase`), for every id an event may carry: the id percent-encoded as a path segment
 * (`/console/customers/ana%20maria`, `/console/orders/web%2F1042`), or as the query's `id` when it
 * is `.` or `..`, which a browser resolves away as a segment however it is encoded (`%2e`
 * included): `/console/customers?id=..`, `/console/customers/erase?id=..`; so is a customer's
 * page whose id is `erase` or `opt-out` (`/console/customers?id=erase`).
 */
export function consolePath(
  what: "customers" | "orders",
  id: string,
  action?: "erase" | "opt-out",
): string {
  const segment = encodeURIComponent(id);
  // A customer's page at `/console/customers/erase` or `/opt-out` would be the path of the
  // query-id actions, which a GET is refused at (405).
  const taken =
    segment === "." ||
    segment === ".." ||
    (what === "customers" && !action && (segment === "erase" || segment === "opt-out"));
  if (taken) return `/console/${what}${action ? `/${action}` : ""}?id=${segment}`;
  return `/console/${what}/${segment}${action ? `/${action}` : ""}`;
}

/** Renders a page; every value is escaped unless the template says `| raw`. */
export function renderConsolePage(
  view: ConsoleView,
  data: Record<string, unknown>,
): Promise<string> {
  const messages = Object.fromEntries(
    MESSAGE_FIELDS.flatMap((field) => {
      const value = data[field];
      return typeof value === "string" && value !== "" ? [[field, messageParts(value)]] : [];
    }),
  );
  return engine.renderFile(view, { ...data, ...messages }) as Promise<string>;
}
