// The phone app's profile screen: card + PIN in, the member's profile as the chain holds it.
// Nothing is kept in the page: the PIN field is cleared at once, the profile on the next open.
"use strict";

const $ = (id) => document.getElementById(id);
let CSRF = "";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function when(ms) { return new Date(ms).toLocaleString(); }

function render(data) {
  const consents = Object.entries(data.consents).map(([purpose, c]) =>
    el("tr", {}, el("th", { text: purpose }), el("td", { text: c.granted ? "yes" : "no" }),
      el("td", { class: "muted", text: `${when(c.updated_ms)} · ${c.device}` })));
  const kinds = Object.entries(data.counts).map(([k, n]) => `${n} ${k}`).join(", ") || "nothing yet";
  $("phone-profile").replaceChildren(el("div", { class: "panel" },
    el("h2", { text: `Member ${data.member}` }),
    el("p", { "data-testid": "phone-summary", text: `Held by the chain: ${kinds} (${data.copies} sealed ${data.copies === 1 ? "copy" : "copies"}).` }),
    data.erased_ms ? el("p", { class: "muted", text: `Forgotten at your request on ${when(data.erased_ms)}; only what came after is here.` }) : null,
    el("h2", { text: "Recently" }),
    data.recent.length ? el("ul", { "data-testid": "phone-recent" }, data.recent.map((r) =>
      el("li", { text: `${r.type} ${r.name} · ${when(r.ts_ms)}${r.store_id ? " · " + r.store_id : ""}` })))
      : el("p", { class: "muted", text: "Nothing yet." }),
    el("h2", { text: "Your choices" }),
    consents.length ? el("table", { class: "status-table" }, consents) : el("p", { class: "muted", text: "None recorded." })));
}

$("phone-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("phone-error").textContent = "";
  const card = $("phone-card").value.trim();
  const pin = $("phone-pin").value;
  $("phone-pin").value = "";
  $("phone-profile").replaceChildren(el("p", { class: "muted", text: "Opening your profile…" }));
  try {
    const response = await fetch("/api/phone/profile", { method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF }, body: JSON.stringify({ card, pin }) });
    const data = await response.json();
    if (!response.ok) throw new Error(`${data.message} (${data.reason})`);
    render(data);
  } catch (e) {
    $("phone-profile").replaceChildren();
    $("phone-error").textContent = e.message;
  }
});

(async () => { CSRF = (await (await fetch("/api/state")).json()).csrf; })();
