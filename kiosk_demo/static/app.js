// Shelfwise kiosk: plain JS, no build step, nothing loaded from the internet.
// All state lives on the server; this page only renders it and forgets it on reset.
"use strict";

const $ = (id) => document.getElementById(id);
let STATE = { idle_seconds: 90 };
let idleTimer = null;
let current = "welcome";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") node.addEventListener("click", v);
    else if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v;  // CSSOM: allowed by the CSP, unlike a style attribute
    else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function money(value) {
  return value === null || value === undefined ? "" : "€" + Number(value).toFixed(2);
}

function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.classList.add("show");
  setTimeout(() => t.classList.remove("show"), 2200);
}

// Every change carries the CSRF token the server handed out in /api/state (double submit);
// a server restart hands out a new one: fetch it and try once more.
async function api(path, body, method, retried) {
  const options = { method: method || (body === undefined ? "GET" : "POST"), headers: {} };
  if (options.method !== "GET") options.headers["X-CSRF-Token"] = STATE.csrf || "";
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 403 && !retried && options.method !== "GET") {
    const copy = response.clone();
    let reason = "";
    try { reason = (await copy.json()).reason; } catch (e) { /* not JSON */ }
    if (reason === "csrf") {
      STATE.csrf = (await (await fetch("/api/state")).json()).csrf;
      return api(path, body, method, true);
    }
  }
  let data = {};
  try { data = await response.json(); } catch (e) { data = { message: "no response" }; }
  if (!response.ok) {
    const error = new Error(data.message || "request failed");
    error.reason = data.reason || "";
    error.status = response.status;
    if (data.reason === "session_ended" && !path.startsWith("/api/staff")) resetKiosk("session ended");
    throw error;
  }
  return data;
}

// Reading or changing a member's data needs their PIN: ask for it, then try again.
let pinWaiter = null;
function askPin() {
  $("pin-error").textContent = "";
  $("pin-prompt-input").value = "";
  $("pin-prompt").hidden = false;
  $("pin-prompt-input").focus();
  return new Promise((resolve, reject) => { pinWaiter = { resolve, reject }; });
}
function closePin(ok) {
  $("pin-prompt").hidden = true;
  $("pin-prompt-input").value = "";
  const waiter = pinWaiter;
  pinWaiter = null;
  if (waiter) (ok ? waiter.resolve : waiter.reject)(Object.assign(new Error("PIN not given"), { reason: "pin_required" }));
}
async function confirmPin(event) {
  if (event) event.preventDefault();
  const pin = $("pin-prompt-input").value;
  $("pin-prompt-input").value = "";  // never left on screen, right or wrong
  try {
    const data = await api("/api/session/verify", { pin });
    renderSession(data.session);
    closePin(true);
  } catch (e) { $("pin-error").textContent = errorText(e); }
}
async function protectedApi(path, body) {
  try { return await api(path, body); } catch (e) {
    if (e.reason !== "pin_required") throw e;
    await askPin();
    return api(path, body);
  }
}

function errorText(error) {
  return error.reason ? `${error.message} (${error.reason})` : error.message;
}

// -- screens ----------------------------------------------------------------------------
function show(name) {
  current = name;
  for (const section of document.querySelectorAll(".screen")) {
    section.hidden = section.id !== "screen-" + name;
  }
  for (const tab of document.querySelectorAll("nav .tab[data-go]")) {
    tab.classList.toggle("active", tab.dataset.go === name);
  }
  const loaders = { scan: () => $("scan-input").focus(), foryou: loadForYou, cart: loadCart,
    privacy: loadPrivacy, phone: loadGeo, staff: loadStaff, welcome: () => $("card-input").focus() };
  (loaders[name] || (() => {}))();
}

function renderSession(session) {
  STATE.session = session;
  $("nav").hidden = !session;
  $("nav-sign-in").hidden = !session || session.kind === "member";
  if (!session) { $("who").textContent = ""; return; }
  $("who").textContent = session.kind === "member"
    ? `Member ${session.member} · ${session.segment}` + (session.verified ? " · PIN given" : "") : "Guest (not signed in)";
  $("cart-count").textContent = session.cart_count || 0;
}

function resetKiosk(why) {
  // Wipe everything the last shopper left on any screen, then show the welcome screen.
  for (const id of ["product-card", "scan-error", "search-results", "foryou-sections", "cart-lines", "cart-order",
    "cart-extras", "redeem-result", "checkout-result", "privacy-summary", "privacy-consents",
    "forget-result", "geo-result", "signin-error", "staff-panel", "staff-error", "greeting", "pin-error", "receipt"]) {
    $(id).replaceChildren();
  }
  for (const id of ["scan-input", "search-input", "code-input", "card-input", "signin-pin", "staff-pin"]) $(id).value = "";
  closePin(false);
  renderConsentChoices();
  renderSession(null);
  show("welcome");
  if (why) toast(why);
}

function armIdle() {
  clearTimeout(idleTimer);
  if (!STATE.session && !STATE.staff) return;
  idleTimer = setTimeout(async () => {
    const hadSession = !!STATE.session;
    if (hadSession) { try { await api("/api/session/end", {}); } catch (e) { /* already ended */ } }
    if (STATE.staff) await lockStaff();
    resetKiosk(hadSession ? "Session ended after inactivity" : "Staff screen locked after inactivity");
  }, STATE.idle_seconds * 1000);
}
for (const type of ["pointerdown", "keydown", "touchstart"]) {
  document.addEventListener(type, armIdle, { passive: true });
}

// -- tiles ------------------------------------------------------------------------------
function tile(item, why, extra, tapped) {
  const tap = tapped || (() => {});
  return el("div", { class: "tile", "data-item": item.item_id },
    el("div", { class: "name", text: item.name }),
    el("div", { class: "meta", text: [item.brand, item.category, money(item.price)].filter(Boolean).join(" · ") }),
    why ? el("div", { class: "why", text: "Why: " + why }) : null,
    extra || null,
    el("div", { class: "actions" },
      el("button", { onclick: () => { tap(); openItem(item); }, text: "Details" }),
      el("button", { class: "primary", onclick: () => { tap(); addToCart(item.item_id); }, text: "Add" })));
}

// A shelf a recommender experiment served was recorded as shown: a tap is its arm's click.
function recTapped(r) {
  if (!r.shown_id) return null;
  return () => api("/api/recommendation/click", { shown_id: r.shown_id, item_id: r.item.item_id }).catch(() => {});
}

function recGrid(title, recs, testid, empty) {
  const box = el("div", { "data-testid": testid });
  box.append(el("h2", { text: title }));
  if (!recs || recs.length === 0) {
    if (empty) box.append(el("p", { class: "muted", text: empty }));
    return box;
  }
  box.append(el("div", { class: "grid" }, recs.map((r) => tile(r.item, r.reason, null, recTapped(r)))));
  return box;
}

function dealList(deals, title, empty) {
  if (!deals || deals.length === 0) {
    return empty ? el("div", { "data-testid": "deals" }, el("h2", { text: title || "Deals" }),
      el("p", { class: "muted no-deals", text: empty })) : null;
  }
  return el("div", { "data-testid": "deals" }, el("h2", { text: title || "Deals" }),
    deals.map((d) => {
      const why = [d.description, d.amount ? `worth ${money(d.amount)}` : ""].filter(Boolean).join(" · ");
      return el("div", { class: "deal" }, el("strong", { text: d.title || d.offer_id }),
        why ? el("div", { class: "muted", text: why }) : null);
    }));
}

async function addToCart(itemId) {
  try {
    const cart = await api("/api/cart/add", { item_id: itemId });
    $("cart-count").textContent = cart.lines.reduce((n, l) => n + l.quantity, 0);
    toast("Added to cart");
  } catch (e) { toast(errorText(e)); }
}

// -- scan -------------------------------------------------------------------------------
function renderCard(card) {
  const item = card.item;
  const price = card.price ?? item.price;
  const root = el("div", { class: "product", "data-testid": "product-card" },
    el("div", { class: "product-head" },
      el("div", {},
        el("h2", { text: item.name }),
        el("p", { class: "meta", text: [item.brand, item.category, item.gtin ? "GTIN " + item.gtin : ""].filter(Boolean).join(" · ") }),
        card.note ? el("p", { class: "note", "data-testid": "scan-note", text: card.note.charAt(0).toUpperCase() + card.note.slice(1) }) : null),
      el("div", { class: "buy" },
        el("div", { class: "price", text: money(price) }),
        el("button", { class: "primary big", onclick: () => addToCart(item.item_id), text: "Add to cart" }),
        watchButton(item))),
    dealList(card.deals, "Deals on this item", "No deals on this item today."),
    recGrid("Goes with", card.goes_with, "goes-with", "Nothing paired with this yet."),
    recGrid("Cheaper alternatives", card.alternatives, "alternatives", "No cheaper alternative in stock."));
  $("product-card").replaceChildren(root);
}

// A member asks to be told (in their app) when the item is back or cheaper: a watch.
function watchButton(item) {
  const back = item.in_stock === false;
  const button = el("button", { "data-testid": "watch", text: back ? "Tell me when it's back" : "Tell me when it's cheaper" });
  button.onclick = async () => {
    try {
      await api("/api/watch", { item_id: item.item_id, kind: back ? "back_in_stock" : "price_drop" });
      button.textContent = back ? "We'll tell you when it's back" : "We'll tell you when it's cheaper";
      button.disabled = true;
    } catch (e) { toast(errorText(e)); }
  };
  return button;
}

async function scanCode(code) {
  $("scan-error").textContent = "";
  try {
    renderCard(await api("/api/scan", { code }));
  } catch (e) {
    $("product-card").replaceChildren();
    $("scan-error").textContent = errorText(e);
  }
}

async function openItem(item) {
  show("scan");
  await scanCode(item.gtin || item.item_id);
}

$("scan-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    const code = $("scan-input").value.trim();
    $("scan-input").value = "";
    if (code) scanCode(code);
  }
});

$("photo-input").addEventListener("change", async () => {
  const file = $("photo-input").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file);
  $("scan-error").textContent = "";
  try {
    renderCard(await api("/api/scan/image", form));
  } catch (e) { $("scan-error").textContent = errorText(e); }
  $("photo-input").value = "";
});

// -- for you ----------------------------------------------------------------------------
// The segment shows only as a greeting: a shopper never sees a label like "lapsed".
const GREETINGS = {
  new: "Welcome! Here is what shoppers like here.",
  returning: "Welcome back.",
  loyal: "Welcome back, good to see you again.",
  lapsed: "Welcome back, it has been a while.",
};
async function loadForYou() {
  try {
    const data = await api("/api/for-you");
    $("greeting").textContent = GREETINGS[data.segment] || GREETINGS.new;
    const sections = [];
    if (data.personal.length) sections.push(recGrid("Picked for you", data.personal, "personal"));
    if (data.buy_again.length) sections.push(recGrid("Time to buy again?", data.buy_again, "buy-again"));
    if (!data.personal.length) {
      sections.push(el("p", { class: "muted", text: data.personal_allowed
        ? "Scan a few products and this shelf learns what you like."
        : "Personal suggestions are off (see Privacy). Here is what is popular." }));
    }
    sections.push(dealList(data.deals, "Deals for you"));
    sections.push(recGrid("Popular in this store", data.cold_start, "cold-start"));
    if (data.best_sellers.length) sections.push(recGrid("Best sellers", data.best_sellers, "best-sellers"));
    if (data.recently_viewed.length) sections.push(recGrid("You looked at", data.recently_viewed, "recently-viewed"));
    $("foryou-sections").replaceChildren(...sections.filter(Boolean));
  } catch (e) { $("foryou-sections").replaceChildren(el("p", { class: "error", text: errorText(e) })); }
}

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = $("search-input").value.trim();
  if (!q) return;
  try {
    const data = await api("/api/search?q=" + encodeURIComponent(q));
    $("search-results").replaceChildren(el("div", { "data-testid": "search-results" },
      el("h2", {}, `Results for “${data.query}” `,
        data.personalised ? el("span", { class: "pill", "data-testid": "sorted-for-you", text: "sorted for you" }) : null),
      data.items.length ? el("div", { class: "grid" }, data.items.map((i) => tile(i))) : el("p", { text: "Nothing found." })));
  } catch (e) { $("search-results").replaceChildren(el("p", { class: "error", text: errorText(e) })); }
});

// -- cart -------------------------------------------------------------------------------
function renderCart(data) {
  $("cart-count").textContent = data.lines.reduce((n, l) => n + l.quantity, 0);
  if (!data.lines.length) {
    $("cart-lines").replaceChildren(el("p", { class: "muted", text: "Your cart is empty. Scan something!" }));
  } else {
    $("cart-lines").replaceChildren(el("table", { "data-testid": "cart-table" },
      el("tr", {}, el("th", { text: "Item" }), el("th", { text: "Qty" }), el("th", { text: "Price" }), el("th", {})),
      data.lines.map((l) => el("tr", {}, el("td", { text: l.name }), el("td", { text: l.quantity }),
        el("td", { text: money(l.line_total) }),
        el("td", {}, el("button", { onclick: async () => renderCart(await api("/api/cart/remove", { item_id: l.item_id })), text: "Remove" })))),
      el("tr", {}, el("th", { text: "Total" }), el("td", {}), el("th", { text: money(data.total) }), el("td", {}))));
  }
  $("cart-extras").replaceChildren(...[dealList(data.offers),
    data.add_ins && data.add_ins.length ? recGrid("Add to your basket?", data.add_ins, "add-ins") : null].filter(Boolean));
  loadOrder();
}

// The cart priced as one order (never redeemed): the offers the till would apply, each with
// its money off, and the ones it would leave out, with the reason in words.
function orderPanel(order) {
  if (!order.applied.length && !order.left_out.length) return null;
  return el("div", { class: "panel", "data-testid": "cart-order" },
    el("h2", { text: "Offers on this order" }),
    order.applied.length
      ? el("table", { class: "status-table", "data-testid": "order-applied" },
        ...order.applied.map((a) => el("tr", {}, el("th", { text: a.title }),
          el("td", { text: a.amount ? "−" + money(a.amount) : `+${a.points} points` }))),
        el("tr", {}, el("th", { text: "You save" }), el("td", { text: money(order.discount) })),
        el("tr", {}, el("th", { text: "To pay" }), el("td", { text: money(order.total) })))
      : el("p", { class: "muted", text: "No offer applies to this cart yet." }),
    order.left_out.length ? el("h3", { text: "Not applied" }) : null,
    order.left_out.length ? el("ul", { "data-testid": "order-left-out" },
      order.left_out.map((x) => el("li", {}, el("strong", { text: x.title }), " — " + x.message))) : null);
}

async function loadOrder() {
  try {
    const order = await api("/api/cart/order");
    $("cart-order").replaceChildren(...[orderPanel(order)].filter(Boolean));
  } catch (e) { $("cart-order").textContent = errorText(e); }
}

async function loadCart() {
  try { renderCart(await api("/api/cart")); } catch (e) { $("cart-lines").textContent = errorText(e); }
}

$("redeem").addEventListener("click", async () => {
  const code = $("code-input").value.trim();
  const out = $("redeem-result");
  out.className = "";
  if (!code) return;
  try {
    const data = await protectedApi("/api/cart/redeem", { code });
    out.className = "ok";
    const r = data.redemption || {};
    out.textContent = `Code accepted: ${money(r.amount)} off` + (r.sandbox ? " (sandbox: nothing spent)" : "");
    renderCart(data);
  } catch (e) {
    out.className = "error";
    out.setAttribute("data-testid", "redeem-refused");
    out.textContent = "Code refused: " + errorText(e);
  }
});

$("checkout").addEventListener("click", async () => {
  try {
    const data = await api("/api/checkout", {});
    $("checkout-result").textContent = `Paid ${money(data.paid)} for ${data.lines} lines (demo: no money moved). Thank you!`;
    loadCart();
  } catch (e) { $("checkout-result").textContent = errorText(e); }
});

// -- privacy ----------------------------------------------------------------------------
function consentRow(purpose, label, checked, onchange) {
  const box = el("input", { type: "checkbox", id: "consent-" + purpose, "data-purpose": purpose });
  box.checked = !!checked;
  box.addEventListener("change", () => onchange(box.checked));
  return el("label", { class: "consent-row", for: "consent-" + purpose }, box, label);
}

async function loadPrivacy() {
  try {
    const data = await protectedApi("/api/privacy");
    const kinds = Object.entries(data.event_kinds).map(([k, n]) => `${n} ${k}`).join(", ") || "nothing yet";
    $("privacy-summary").replaceChildren(el("div", { class: "panel", "data-testid": "privacy-summary" },
      el("p", { text: data.kind === "member" ? `You are loyalty member ${data.shopper_id} (segment: ${data.segment}).`
        : "You are a guest. When you leave or after inactivity, this session is forgotten." }),
      el("p", { text: `Events held: ${kinds}.` }),
      el("p", { text: "Cart lines: " + (data.counts.carts || 0) }),
      data.recent_events.length ? el("ul", {}, data.recent_events.map((e) =>
        el("li", { text: `${e.type} ${e.item_id || ""} · ${new Date(e.ts_ms).toLocaleString()}` }))) : null));
    $("privacy-consents").replaceChildren(...Object.entries(data.consent_labels).map(([purpose, label]) =>
      consentRow(purpose, label, data.consents[purpose], async (granted) => {
        const r = await protectedApi("/api/privacy/consent", { purpose, granted });
        renderSession(r.session);
        toast("Saved");
      })));
  } catch (e) {
    $("privacy-consents").replaceChildren();
    $("privacy-summary").replaceChildren(el("p", { class: "error", "data-testid": "privacy-refused", text: errorText(e) }));
  }
}

$("forget").addEventListener("click", async () => {
  try {
    const data = await protectedApi("/api/privacy/forget", {});
    resetKiosk(`Forgotten: ${data.removed_rows} records erased`);
    showReceipt(data);
  } catch (e) { $("forget-result").textContent = errorText(e); }
});

// The member's receipt of their erasure: when, and whether the chain's other kiosks were told.
function showReceipt(data) {
  const r = data.receipt || {};
  const where = !r.fleet ? "This kiosk kept no copy elsewhere."
    : r.sent ? "The chain's other kiosks were told and forget you at their next sync."
      : "The chain's other kiosks will be told as soon as this kiosk is back online.";
  $("receipt").replaceChildren(el("div", { class: "panel receipt", "data-testid": "erasure-receipt" },
    el("h2", { text: "Erasure receipt" }),
    el("p", { "data-testid": "erased-at", text: `Erased on ${new Date(r.erased_ms).toLocaleString()} (${new Date(r.erased_ms).toISOString()}).` }),
    el("p", { text: `${data.removed_rows} records removed from this kiosk. ${where}` }),
    el("button", { onclick: () => $("receipt").replaceChildren(), text: "Close" })));
}

// -- phone app: a map-less plot ---------------------------------------------------------
let GEO = null;
function project(lat, lon) {
  const p = GEO.plot;
  return [(lon - p.west) / (p.east - p.west) * 500, (p.north - lat) / (p.north - p.south) * 500];
}
function unproject(x, y) {
  const p = GEO.plot;
  return [p.north - y / 500 * (p.north - p.south), p.west + x / 500 * (p.east - p.west)];
}
function metresToPx(m) {
  const p = GEO.plot;
  return m / (111320 * Math.cos(p.south * Math.PI / 180)) / (p.east - p.west) * 500;
}
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

async function loadGeo() {
  if (!GEO) GEO = await api("/api/geo");
  const plot = $("geo-plot");
  plot.replaceChildren();
  for (let i = 0; i <= 500; i += 50) {
    plot.append(svg("line", { x1: i, y1: 0, x2: i, y2: 500, stroke: "#eee" }), svg("line", { x1: 0, y1: i, x2: 500, y2: i, stroke: "#eee" }));
  }
  for (const fence of GEO.fences) {
    let shape, labelAt;
    if (fence.kind === "circle") {
      const [x, y] = project(fence.lat, fence.lon);
      shape = svg("circle", { cx: x, cy: y, r: metresToPx(fence.radius_m) });
      labelAt = [x, y - metresToPx(fence.radius_m) - 4];
    } else {
      const pts = fence.ring.map(([lat, lon]) => project(lat, lon));
      shape = svg("polygon", { points: pts.map((p) => p.join(",")).join(" ") });
      labelAt = [pts[0][0], pts[0][1] + 14];
    }
    shape.setAttribute("fill", "rgba(31,122,77,.18)");
    shape.setAttribute("stroke", "#1f7a4d");
    // Labels near the plot's edge grow inwards instead of being cut off.
    const anchor = labelAt[0] < 120 ? "start" : labelAt[0] > 380 ? "end" : "middle";
    const labelX = Math.min(495, Math.max(5, labelAt[0]));
    const label = svg("text", { x: labelX, y: Math.max(12, labelAt[1]), "text-anchor": anchor, "font-size": 12 });
    label.textContent = fence.name;
    plot.append(shape, label);
  }
  const [sx, sy] = project(GEO.store.lat, GEO.store.lon);
  plot.append(svg("rect", { x: sx - 5, y: sy - 5, width: 10, height: 10, fill: "#1b2430" }));
}

$("geo-plot").addEventListener("click", async (event) => {
  const plot = $("geo-plot");
  const box = plot.getBoundingClientRect();
  const x = (event.clientX - box.left) / box.width * 500;
  const y = (event.clientY - box.top) / box.height * 500;
  const [lat, lon] = unproject(x, y);
  const accuracy = Number($("accuracy").value);
  plot.querySelectorAll(".phone").forEach((n) => n.remove());
  plot.append(svg("circle", { class: "phone", cx: x, cy: y, r: Math.max(3, metresToPx(accuracy)), fill: "rgba(179,92,0,.25)", stroke: "#b35c00" }),
    svg("circle", { class: "phone", cx: x, cy: y, r: 4, fill: "#b35c00" }));
  const out = $("geo-result");
  try {
    const data = await api("/api/geo/locate", { lat, lon, accuracy_m: accuracy });
    renderGeo(data);
  } catch (e) { out.replaceChildren(el("p", { class: "error", text: errorText(e) })); }
});
$("accuracy").addEventListener("input", () => { $("acc-label").textContent = $("accuracy").value; });

function renderGeo(result) {
  const out = $("geo-result");
  const parts = [];
  const offers = result.offers || [];
  const inside = result.inside || [];
  parts.push(el("p", { text: "Inside: " + (inside.length ? inside.join(", ") : "no fence") }));
  parts.push(el("p", { text: "Events: " + (result.events.length
    ? result.events.map((t) => `${t.kind} ${t.fence_id}` + (t.initial ? " (already inside)" : "")).join(", ") : "none") }));
  parts.push(offers.length ? dealList(offers) : el("p", { class: "muted", text: "No offer triggered here." }));
  out.replaceChildren(...parts);
}

// -- staff ------------------------------------------------------------------------------
async function loadStaff() {
  try {
    renderStaff(await api("/api/staff/status"));
    STATE.staff = true;
    $("staff-login").hidden = true;
    $("staff-lock").hidden = false;
    armIdle();
  } catch (e) {
    STATE.staff = false;
    $("staff-login").hidden = false;
    $("staff-lock").hidden = true;
    $("staff-panel").replaceChildren();
    if (e.status === 403) $("staff-pin").focus();
  }
}

async function lockStaff() {
  STATE.staff = false;
  try { await api("/api/staff/logout", {}); } catch (e) { /* locked already */ }
  $("staff-panel").replaceChildren();
  $("staff-pin").value = "";
  $("staff-login").hidden = false;
  $("staff-lock").hidden = true;
}

$("staff-login").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("staff-error").textContent = "";
  const pin = $("staff-pin").value;
  $("staff-pin").value = "";  // never left on screen, right or wrong
  try {
    await api("/api/staff/login", { pin });
    loadStaff();
  } catch (e) { $("staff-error").textContent = errorText(e); }
});

$("staff-lock").addEventListener("click", async () => { await lockStaff(); show(STATE.session ? "scan" : "welcome"); });

// Scans by hour of the store's day: labelled axes, a y scale, the count over each bar.
function hourChart(values, zone, testid) {
  const W = 640, H = 300, left = 56, right = 12, top = 16, bottom = 64;
  const plotW = W - left - right, plotH = H - top - bottom;
  const max = Math.max(1, ...values);
  const step = Math.max(1, Math.ceil(max / 4));
  const yMax = step * Math.ceil(max / step);
  const bw = plotW / values.length;
  const title = `Scans today by hour (${zone})`;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", "data-testid": testid, role: "img", "aria-label": title });
  for (let v = 0; v <= yMax; v += step) {
    const y = top + plotH - v / yMax * plotH;
    chart.append(svg("line", { x1: left, x2: W - right, y1: y, y2: y, stroke: "#e3dfd4" }));
    const t = svg("text", { x: left - 8, y: y + 6, "text-anchor": "end" });
    t.textContent = v;
    chart.append(t);
  }
  values.forEach((v, i) => {
    const h = v / yMax * plotH;
    chart.append(svg("rect", { x: left + i * bw + 2, y: top + plotH - h, width: bw - 4, height: h, fill: "#1f7a4d" }));
    if (i % 3 === 0) {
      const t = svg("text", { x: left + i * bw + bw / 2, y: top + plotH + 24, "text-anchor": "middle" });
      t.textContent = String(i).padStart(2, "0");
      chart.append(t);
    }
  });
  chart.append(svg("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, stroke: "#1b2430" }),
    svg("line", { x1: left, x2: left, y1: top, y2: top + plotH, stroke: "#1b2430" }));
  const xTitle = svg("text", { x: left + plotW / 2, y: H - 8, "text-anchor": "middle", class: "axis-title" });
  xTitle.textContent = `hour of day (${zone})`;
  const yTitle = svg("text", { x: 16, y: top + plotH / 2, "text-anchor": "middle", class: "axis-title", transform: `rotate(-90 16 ${top + plotH / 2})` });
  yTitle.textContent = "scans";
  chart.append(xTitle, yTitle);
  return el("div", { class: "panel" }, el("h2", { text: title }), chart);
}

const FUNNEL_LABELS = { scan: "Scans", offer_shown: "Offers shown", cart_add: "Added to cart",
  offer_rejected: "Offers refused", offer_redeemed: "Offers redeemed", purchase: "Items bought" };

// The funnel as labelled horizontal bars (readable at any width), refusals by reason below.
function funnel(data) {
  const max = Math.max(1, ...data.funnel.map((f) => f.count));
  return el("div", { class: "panel" },
    el("h2", { text: `Today's offer funnel (${data.today})` }),
    el("div", { class: "funnel", "data-testid": "funnel-chart", role: "img", "aria-label": "today's offer funnel" },
      data.funnel.map((f) => el("div", { class: "funnel-row" + (f.step === "offer_rejected" ? " refused" : "") },
        el("span", { class: "funnel-label", text: FUNNEL_LABELS[f.step] || f.step }),
        el("span", { class: "funnel-track" }, el("span", { class: "funnel-bar", style: `width: ${f.count / max * 100}%` })),
        el("span", { class: "funnel-count", text: String(f.count) })))),
    el("h3", { text: "Offers refused today, by reason" }),
    el("div", { "data-testid": "rejections" },
      data.rejections.length
        ? el("table", { class: "status-table" }, ...data.rejections.map((r) => el("tr", {}, el("th", { text: r.reason }), el("td", { text: String(r.count) }))))
        : el("p", { class: "muted", text: "None today." })));
}

function ago(ms) {
  if (!ms) return "never";
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 0) return -s < 90 ? `in ${-s} s` : `in ${Math.round(-s / 60)} min`;
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function bytes(n) {
  n = n || 0;
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

function shortError(text) {
  // The full error stays in the tooltip; the table shows its gist, wrapped.
  return text.length > 90 ? text.slice(0, 87) + "…" : text;
}

function statusTable(rows, testid) {
  return el("table", { class: "status-table", "data-testid": testid },
    ...rows.map(([k, v, title]) => el("tr", {}, el("th", { text: k }), el("td", title ? { text: v, title } : { text: v }))));
}

// A readable sync status: the raw record overflows a kiosk screen and says little at a glance.
function syncTable(sync, lastSync) {
  if (!sync || sync.available === false) return el("p", { class: "muted", text: "Sync module not available." });
  const error = sync.last_error || (lastSync.state === "failed" ? lastSync.message : "") || "";
  const upstream = lastSync.upstream || "none configured (offline)";
  return statusTable([
    ["Upstream", upstream],
    ["Queued", `${sync.queued} summaries`],
    ["Queued bytes", bytes(sync.queued_bytes)],
    ["Not yet summarised", `${sync.unsummarised_events ?? 0} events`],
    ["Last success", ago(sync.last_success_ms)],
    ["Last attempt", lastSync.at_ms || sync.last_attempt_ms ? `${ago(sync.last_attempt_ms || lastSync.at_ms)} (${lastSync.state})` : "never"],
    ["Last error", error ? shortError(error) : "none", error],
    ["Next attempt", sync.next_attempt_ms ? ago(sync.next_attempt_ms) : lastSync.upstream ? "on the next round" : "only on Sync now"],
  ], "sync-status");
}

function modelTable(data) {
  const m = data.model;
  return statusTable(m ? [
    ["Model", m.name],
    ["Version", m.version],
    ["Quantization", m.quantization],
    ["Items in model", String(m.items)],
    ["Items in catalog", String(data.catalog_items)],
  ] : [
    ["Model", "none (popularity only)"],
    ["Items in catalog", String(data.catalog_items)],
  ], "model-status");
}

function toggleRow(id, label, sub, checked, onchange) {
  const box = el("input", { type: "checkbox", class: "toggle", id, role: "switch" });
  box.checked = !!checked;
  box.addEventListener("change", () => onchange(box.checked));
  return el("label", { class: "switch-row", for: id },
    el("span", { class: "switch-text" }, el("span", { text: label }), sub ? el("code", { text: sub }) : null), box);
}

function renderStaff(data) {
  const offerRows = data.offers.map((o) => toggleRow("offer-" + o.offer_id, o.title, o.offer_id, o.active,
    async (active) => renderStaff(await api("/api/staff/offer", { offer_id: o.offer_id, active }))));
  $("staff-panel").replaceChildren(el("div", { class: "cols staff", "data-testid": "staff-panel" },
    el("div", { class: "panel" },
      el("h2", { text: "Model" }),
      modelTable(data),
      el("h2", { text: "Sandbox mode" }),
      el("p", { class: "muted", "data-testid": "sandbox-state", text: data.sandbox
        ? "ON: code redemptions run every check and roll back; nothing is spent."
        : "OFF: code redemptions are real." }),
      toggleRow("sandbox", "Sandbox mode", "redemptions spend nothing", data.sandbox,
        async (on) => renderStaff(await api("/api/staff/sandbox", { on })))),
    el("div", { class: "panel" },
      el("h2", { text: "Sync" }),
      syncTable(data.sync, data.last_sync),
      el("button", { onclick: async () => renderStaff(await api("/api/staff/sync", {})), text: "Sync now" })),
    el("div", { class: "panel" }, el("h2", { text: "Offers (on/off)" }),
      offerRows.length ? offerRows : el("p", { class: "muted", text: data.offers_available ? "No offers defined." : "Offers module not available." })),
    fleetPanel(data.fleet),
    hourChart(data.scans_by_hour, data.timezone, "scan-chart"),
    funnel(data),
    tillPanel(data.till),
    sharesPanel(data.shares || []),
    experimentsPanel(data.recommend_experiments || []),
    auditPanel(data)));
}

// Loyalty points and order discounts (voided orders and sandbox runs count nowhere).
function tillPanel(till) {
  if (!till) return null;
  const row = (label, today, total) => el("tr", {}, el("th", { text: label }),
    el("td", { text: today }), el("td", { text: total }));
  return el("div", { class: "panel" },
    el("h2", { text: `Points and order discounts (${till.day})` }),
    el("table", { class: "status-table", "data-testid": "till-totals" },
      el("tr", {}, el("th", {}), el("th", { text: "Today" }), el("th", { text: "Total" })),
      row("Points issued", String(till.points_issued_today), String(till.points_issued_total)),
      row("Points burned", String(till.points_burned_today), String(till.points_burned_total)),
      row("Orders discounted", String(till.discounted_orders_today), String(till.discounted_orders_total)),
      row("Money off", money(till.order_discount_today), money(till.order_discount_total))));
}

// Fleet-wide offers: the share of each total or budget the collector leased this kiosk.
function sharesPanel(shares) {
  if (!shares.length) return null;
  const part = (share, used, money_) => share === null || share === undefined ? "–"
    : `${money_ ? money(used) : used} of ${money_ ? money(share) : share}`;
  return el("div", { class: "panel", "data-testid": "fleet-shares" },
    el("h2", { text: "Fleet-wide offers: this kiosk's share" }),
    el("table", { class: "status-table" },
      el("tr", {}, ...["Offer", "Redemptions", "Budget", "Share"].map((h) => el("th", { text: h }))),
      ...shares.map((s) => el("tr", { "data-offer": s.offer_id },
        el("td", { text: s.offer_id }),
        el("td", { text: part(s.redemptions, s.used_redemptions, false) }),
        el("td", { text: part(s.budget, s.used_budget, true) }),
        el("td", { text: s.live ? `live until ${new Date(s.expires_ms).toLocaleTimeString()}` : "lapsed: sync" })))));
}

// Recommender experiments: per arm, lists shown, taps, click-through, purchases of shown items.
function percent(rate) { return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`; }

function experimentsPanel(experiments) {
  const blocks = experiments.map((x) => {
    const pref = x.preference;
    const summary = pref
      ? `interleaved · first arm won ${pref.wins}, lost ${pref.losses}, tied ${pref.ties} (p = ${pref.p_value.toFixed(3)})`
      : `split · lift ${percent(x.lift)} (conversion), ${percent(x.ctr_lift)} (CTR)`;
    return el("div", { "data-testid": "experiment-" + x.experiment_id },
      el("h3", { text: `${x.experiment_id} on ${x.surface}${x.active ? "" : " (stopped)"}` }),
      el("table", { class: "status-table" },
        el("tr", {}, ...["Arm", "Shown", "Taps", "CTR", "Bought", "Conversion"].map((h) => el("th", { text: h }))),
        ...x.arms.map((a) => el("tr", { "data-arm": a.name },
          ...[a.name, String(a.impressions), String(a.clicks), percent(a.ctr), String(a.conversions), percent(a.conversion_rate)]
            .map((v) => el("td", { text: v }))))),
      el("p", { class: "muted", text: summary }));
  });
  return el("div", { class: "panel", "data-testid": "recommend-experiments" }, el("h2", { text: "Recommender experiments" }),
    blocks.length ? blocks : el("p", { class: "muted", text: "None running." }));
}

// Members across the chain: what waits here for the collector, and erasures each device
// still has to hear of (as the collector saw at the last sync).
function fleetPanel(fleet) {
  if (!fleet || !fleet.on) return el("div", { class: "panel" }, el("h2", { text: "Members across kiosks" }),
    el("p", { class: "muted", text: "Off: this kiosk keeps members to itself (no collector or chain secret)." }));
  const devices = Object.entries(fleet.erasures_pending_per_device || {});
  return el("div", { class: "panel", "data-testid": "fleet-status" },
    el("h2", { text: "Members across kiosks" }),
    statusTable([
      ["Erasures to send", String(fleet.pending_erasures)],
      ["Sealed profiles to send", String(fleet.pending_copies)],
      ["Erasures known", String(fleet.known_erasures)],
      ["Last exchange", fleet.last_exchange_ms ? ago(fleet.last_exchange_ms) : "never"],
      ["Last error", fleet.last_error ? shortError(fleet.last_error) : "none", fleet.last_error],
    ], "fleet-table"),
    el("h3", { text: "Erasures pending per device" }),
    devices.length ? el("table", { class: "status-table", "data-testid": "erasures-pending" },
      ...devices.map(([device, n]) => el("tr", {}, el("th", { text: device }), el("td", { text: n ? `${n} to pull` : "up to date" }))))
      : el("p", { class: "muted", "data-testid": "erasures-pending", text: "Not known yet: sync once." }));
}

// Who did what on this kiosk: every staff action is kept in the store's audit log.
const AUDIT_LABELS = { staff_login: "unlocked", staff_logout: "locked", staff_login_failed: "wrong PIN",
  staff_login_locked: "refused (locked out)", offer_on: "switched on", offer_off: "switched off",
  sandbox_on: "sandbox on", sandbox_off: "sandbox off", sync: "synced" };
function auditPanel(data) {
  const rows = (data.audit || []).map((e) => el("tr", {},
    el("th", { text: new Date(e.ts_ms).toLocaleTimeString() }),
    el("td", { text: `${e.actor} ${AUDIT_LABELS[e.action] || e.action}${e.target ? " " + e.target : ""}${e.detail ? " (" + e.detail + ")" : ""}` })));
  return el("div", { class: "panel" }, el("h2", { text: `Staff actions on ${data.kiosk_id}` }),
    rows.length ? el("table", { class: "status-table", "data-testid": "audit-log" }, ...rows)
      : el("p", { class: "muted", "data-testid": "audit-log", text: "None yet." }));
}

$("staff-back").addEventListener("click", () => show(STATE.session ? "scan" : "welcome"));

// -- welcome ----------------------------------------------------------------------------
function renderConsentChoices() {
  const labels = STATE.consent_labels || {};
  const box = $("signin-consents");
  box.querySelectorAll("label").forEach((n) => n.remove());
  for (const purpose of ["personalization", "offers", "location", "sync", "profile_sync"]) {
    if (!labels[purpose]) continue;
    const input = el("input", { type: "checkbox", id: "signin-" + purpose, "data-purpose": purpose });
    input.checked = purpose === "personalization" || purpose === "offers";
    box.append(el("label", { for: "signin-" + purpose }, input, labels[purpose]));
  }
}

async function signIn() {
  const card = $("card-input").value.trim();
  $("signin-error").textContent = "";
  if (!card) { $("signin-error").textContent = "Scan or type your card number first."; return; }
  const consents = {};
  $("signin-consents").querySelectorAll("input[data-purpose]").forEach((i) => { consents[i.dataset.purpose] = i.checked; });
  const pin = $("signin-pin").value;
  $("signin-pin").value = "";  // never left on screen
  const body = pin ? { card, consents, pin } : { card, consents };
  try {
    const data = await api("/api/session/member", body);
    $("card-input").value = "";
    if (data.kept_from_guest) toast("Your scans and cart are now on your card");
    else if (data.fleet && data.fleet.copies) toast("Welcome back: your history from the chain's other kiosks is here");
    else if (data.fleet && data.fleet.on && !data.fleet.online && pin) toast("Offline: showing what this kiosk holds");
    else if (!data.consents_applied) toast("Your saved choices apply: enter your PIN on Privacy to change them");
    renderSession(data.session);
    armIdle();
    show("foryou");
  } catch (e) { $("signin-error").textContent = errorText(e); }
}

$("card-input").addEventListener("keydown", (event) => { if (event.key === "Enter") signIn(); });
$("signin-pin").addEventListener("keydown", (event) => { if (event.key === "Enter") signIn(); });
$("pin-form").addEventListener("submit", confirmPin);
$("pin-cancel").addEventListener("click", () => closePin(false));
$("sign-in").addEventListener("click", signIn);
$("start-anon").addEventListener("click", async () => {
  const data = await api("/api/session/start", {});
  renderSession(data.session);
  armIdle();
  show("scan");
});
$("end-session").addEventListener("click", async () => {
  let data = {};
  try { data = await api("/api/session/end", {}); } catch (e) { /* gone already */ }
  const travel = !data.sealed ? "" : data.fleet && data.fleet.sent
    ? " Your profile went, sealed, to your other kiosks." : " Your sealed profile follows when the network is back.";
  resetKiosk("Goodbye! Nothing of your visit stays on this screen." + travel);
});
for (const button of document.querySelectorAll("[data-go]")) {
  button.addEventListener("click", () => show(button.dataset.go));
}

async function boot() {
  const state = await api("/api/state");
  STATE = { ...STATE, ...state };
  $("store-name").textContent = state.store.name || "";
  renderConsentChoices();
  $("demo-cards").replaceChildren(...state.demo_cards.map((c) =>
    el("button", { class: "ghost", "data-card": c.card, onclick: () => { $("card-input").value = c.card; }, text: `${c.card} · ${c.label}` + (c.pin ? ` · PIN ${c.pin}` : "") })));
  renderSession(state.session);
  armIdle();
  show(state.session ? "scan" : "welcome");
}
boot();
