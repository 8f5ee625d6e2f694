/*
 * Rapport website chat widget. One tag on the store's pages:
 *
 *   <script src="https://BOT-HOST/webhooks/widget/widget.js" data-title="Oak & Ember"
 *           data-customer-id="STORE-CUSTOMER-ID" data-customer-token="HMAC" async></script>
 *
 * data-customer-id / data-customer-token are for a signed-in shopper only: the token is
 * hex HMAC-SHA256(WIDGET_SIGNING_SECRET, customer id), computed by the store's back-end.
 *
 * Plain ES2017, no build step. The server is the origin of this script's own src; socket.io's client is
 * loaded from beside it. Everything lives in a shadow root, so the store's CSS cannot reach in (and
 * ours cannot leak out). The session token (server-issued, signed) and a random device key are kept
 * in localStorage; socket.io reconnects by itself and each (re)connect resumes the same conversation.
 */
(function () {
  "use strict";

  if (window.RapportWidget && window.RapportWidget.version) {
    return; // the tag was included twice
  }

  var SESSION_KEY = "rapport-widget:session";
  var DEVICE_KEY = "rapport-widget:device";

  var script = document.currentScript || (function () {
    var tags = document.querySelectorAll("script[src]");
    for (var i = tags.length - 1; i >= 0; i--) {
      if (/\/webhooks\/widget\/widget\.js(\?|#|$)/.test(tags[i].src)) return tags[i];
    }
    return null;
  })();
  if (!script) {
    console.error("Rapport widget: cannot find its own <script> tag");
    return;
  }
  var scriptUrl = new URL(script.src, window.location.href);
  var serverUrl = scriptUrl.origin;
  var assetsUrl = scriptUrl.href.replace(/widget\.js([?#].*)?$/, "");
  var config = {
    title: script.getAttribute("data-title") || "Chat with us",
    customerId: script.getAttribute("data-customer-id") || "",
    customerToken: script.getAttribute("data-customer-token") || "",
  };

  // -- storage (private browsing may refuse it: then the session lasts as long as the page) --------

  var memoryStore = {};
  function readStored(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return memoryStore[key] || null; }
  }
  function writeStored(key, value) {
    memoryStore[key] = value;
    try { window.localStorage.setItem(key, value); } catch (e) { /* kept in memory */ }
  }

  function deviceKey() {
    var key = readStored(DEVICE_KEY);
    if (!key || !/^[A-Za-z0-9_-]{16,128}$/.test(key)) {
      var bytes = new Uint8Array(32);
      window.crypto.getRandomValues(bytes);
      key = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
      writeStored(DEVICE_KEY, key);
    }
    return key;
  }

  // -- styles ----------------------------------------------------------------------------------------

  var CSS = [
    ":host { all: initial; }",
    "*, *::before, *::after { box-sizing: border-box; }",
    ".root { font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; color: #1f1d1a; }",
    ".launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; display: inline-flex;",
    "  align-items: center; gap: 8px; padding: 12px 18px; border: 0; border-radius: 999px; cursor: pointer;",
    "  background: #7a3e1d; color: #fff; font: inherit; font-weight: 600; box-shadow: 0 6px 20px rgba(0,0,0,.25); }",
    ".launcher:hover { background: #5f2f15; }",
    ".launcher[hidden] { display: none; }",
    ".panel { position: fixed; right: 20px; bottom: 20px; z-index: 2147483001; width: 380px;",
    "  height: min(620px, calc(100vh - 40px)); display: flex; flex-direction: column; background: #fffdf9;",
    "  border-radius: 14px; box-shadow: 0 12px 40px rgba(0,0,0,.28); overflow: hidden; }",
    ".panel[hidden] { display: none; }",
    "@media (max-width: 480px) { .panel { inset: 0; right: 0; bottom: 0; width: 100%; height: 100%; border-radius: 0; } }",
    ".header { display: flex; align-items: center; gap: 8px; padding: 12px 14px; background: #7a3e1d; color: #fff; }",
    ".header h2 { flex: 1; margin: 0; font-size: 16px; font-weight: 650; }",
    ".status { font-size: 12px; opacity: .9; }",
    ".close { border: 0; background: transparent; color: #fff; font-size: 22px; line-height: 1; width: 36px; height: 36px;",
    "  border-radius: 8px; cursor: pointer; }",
    ".close:hover { background: rgba(255,255,255,.15); }",
    ".messages { flex: 1; margin: 0; padding: 14px; overflow-y: auto; list-style: none; display: flex;",
    "  flex-direction: column; gap: 8px; }",
    ".message { max-width: 85%; padding: 8px 12px; border-radius: 14px; white-space: normal; overflow-wrap: anywhere; }",
    ".message.bot { align-self: flex-start; background: #f1ebe4; border-bottom-left-radius: 4px; }",
    ".message.user { align-self: flex-end; background: #7a3e1d; color: #fff; border-bottom-right-radius: 4px; }",
    ".message.user a { color: #fff; }",
    ".message a { color: #7a3e1d; }",
    ".message.notice { align-self: center; background: #fdecea; color: #8a1c12; font-size: 13px; }",
    ".message.typing { color: #6b6259; font-style: italic; }",
    ".message img.image { display: block; max-width: 100%; border-radius: 10px; }",
    ".replies { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }",
    ".reply, .card-action, .send { font: inherit; cursor: pointer; border-radius: 999px; }",
    ".reply, .card-action { padding: 6px 12px; border: 1px solid #7a3e1d; background: #fff; color: #7a3e1d; text-decoration: none; font-size: 14px; }",
    ".reply:hover:not(:disabled), .card-action:hover { background: #f6ece4; }",
    ".reply:disabled { opacity: .55; cursor: default; }",
    ".reply[aria-pressed='true'] { background: #7a3e1d; color: #fff; opacity: 1; }",
    ".cards { display: flex; gap: 10px; overflow-x: auto; margin: 0; padding: 2px 0 6px; list-style: none; max-width: 100%; }",
    ".cards-item { align-self: flex-start; max-width: 100%; }",
    ".card { flex: 0 0 210px; background: #fff; border: 1px solid #e6ddd3; border-radius: 12px; overflow: hidden; display: flex; flex-direction: column; }",
    ".card img { width: 100%; height: 130px; object-fit: cover; background: #f1ebe4; }",
    ".card-body { padding: 10px; display: flex; flex-direction: column; gap: 6px; }",
    ".card h3 { margin: 0; font-size: 15px; }",
    ".card p { margin: 0; font-size: 13px; color: #5b534b; }",
    ".card-actions { display: flex; flex-wrap: wrap; gap: 6px; }",
    ".composer { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #eadfd4; background: #fff; }",
    ".composer input { flex: 1; min-width: 0; padding: 10px 12px; border: 1px solid #c9bcae; border-radius: 999px; font: inherit; color: inherit; background: #fff; }",
    ".send { padding: 10px 16px; border: 0; background: #7a3e1d; color: #fff; font-weight: 600; }",
    ".send:disabled { opacity: .5; cursor: default; }",
    "button:focus-visible, a:focus-visible, input:focus-visible { outline: 3px solid #1a73e8; outline-offset: 2px; }",
    ".sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0,0,0,0); border: 0; }",
  ].join("\n");

  // -- DOM -----------------------------------------------------------------------------------------

  function el(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      if (name === "text") node.textContent = attributes[name];
      else if (name === "className") node.className = attributes[name];
      else node.setAttribute(name, attributes[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  var host = el("div", { id: "rapport-widget" });
  var shadow = host.attachShadow({ mode: "open" });
  shadow.appendChild(el("style", { text: CSS }));
  var launcher = el("button", { className: "launcher", type: "button", "aria-haspopup": "dialog",
    "aria-expanded": "false", "aria-controls": "rapport-panel", "aria-label": "Open chat with " + config.title },
    [el("span", { "aria-hidden": "true", text: "\uD83D\uDCAC" }), el("span", { text: "Chat" })]);
  var statusLine = el("span", { className: "status", role: "status", text: "" });
  var closeButton = el("button", { className: "close", type: "button", "aria-label": "Close chat", text: "\u00D7" });
  var messageList = el("ol", { className: "messages", "aria-live": "polite", "aria-relevant": "additions",
    "aria-label": "Conversation" });
  var input = el("input", { id: "rapport-input", type: "text", autocomplete: "off", placeholder: "Type a message\u2026",
    enterkeyhint: "send" });
  var sendButton = el("button", { className: "send", type: "submit", text: "Send" });
  var form = el("form", { className: "composer" }, [
    el("label", { className: "sr-only", for: "rapport-input", text: "Message" }), input, sendButton]);
  var panel = el("section", { id: "rapport-panel", className: "panel", role: "dialog", "aria-modal": "false",
    "aria-label": config.title + " chat", hidden: "" }, [
    el("div", { className: "header" }, [el("h2", { text: config.title }), statusLine, closeButton]),
    messageList, form]);
  shadow.appendChild(el("div", { className: "root" }, [launcher, panel]));

  function mount() { document.body.appendChild(host); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);

  // -- rendering -----------------------------------------------------------------------------------

  var URL_PATTERN = /https?:\/\/[^\s<>"']+/g;

  // Text as text nodes (never HTML): line breaks kept, http(s) links clickable in a new tab.
  function richText(text) {
    var fragment = document.createDocumentFragment();
    String(text).split("\n").forEach(function (line, index) {
      if (index > 0) fragment.appendChild(document.createElement("br"));
      var last = 0;
      line.replace(URL_PATTERN, function (match, offset) {
        var url = match.replace(/[.,;:!?)\]]+$/, "");
        fragment.appendChild(document.createTextNode(line.slice(last, offset)));
        fragment.appendChild(el("a", { href: url, target: "_blank", rel: "noopener noreferrer nofollow", text: url }));
        last = offset + url.length;
        return match;
      });
      fragment.appendChild(document.createTextNode(line.slice(last)));
    });
    return fragment;
  }

  function isHttpUrl(value) {
    return typeof value === "string" && /^https?:\/\//i.test(value);
  }

  function scrollToEnd() { messageList.scrollTop = messageList.scrollHeight; }

  var typing = null;
  function showTyping(on) {
    if (typing) { typing.remove(); typing = null; }
    if (on) {
      typing = el("li", { className: "message bot typing", text: "\u2026", "aria-label": "typing" });
      messageList.appendChild(typing);
      scrollToEnd();
    }
  }

  function addUserMessage(text) {
    messageList.insertBefore(el("li", { className: "message user" }, [richText(text)]), typing);
    scrollToEnd();
  }

  function addNotice(text) {
    messageList.appendChild(el("li", { className: "message notice", role: "alert", text: text }));
    scrollToEnd();
  }

  function quickReplies(replies, active) {
    var group = el("div", { className: "replies", role: "group", "aria-label": "Suggested replies" });
    replies.forEach(function (reply) {
      if (!reply || typeof reply.title !== "string") return;
      if (reply.type === "web_url" && isHttpUrl(reply.url)) {
        group.appendChild(el("a", { className: "reply", href: reply.url, target: "_blank",
          rel: "noopener noreferrer", text: reply.title }));
        return;
      }
      if (typeof reply.payload !== "string") return;
      var button = el("button", { className: "reply", type: "button", text: reply.title });
      if (!active) button.disabled = true;
      button.addEventListener("click", function () {
        // A reply is used once: the whole group is spent, the chosen one marked.
        group.querySelectorAll("button").forEach(function (other) { other.disabled = true; });
        button.setAttribute("aria-pressed", "true");
        send(reply.payload, reply.title);
        input.focus();
      });
      group.appendChild(button);
    });
    return group;
  }

  function card(element) {
    var body = el("div", { className: "card-body" }, [el("h3", { text: String(element.title || "") })]);
    if (element.subtitle) body.appendChild(el("p", { text: String(element.subtitle) }));
    var actions = el("div", { className: "card-actions" });
    (element.buttons || []).forEach(function (button) {
      if (!button || typeof button.title !== "string") return;
      if (isHttpUrl(button.url)) {
        actions.appendChild(el("a", { className: "card-action", href: button.url, target: "_blank",
          rel: "noopener noreferrer", text: button.title }));
      } else if (typeof button.payload === "string") {
        var action = el("button", { className: "card-action", type: "button", text: button.title });
        action.addEventListener("click", function () { send(button.payload, button.title); });
        actions.appendChild(action);
      }
    });
    body.appendChild(actions);
    var item = el("li", { className: "card" });
    if (isHttpUrl(element.image_url)) {
      var picture = el("img", { src: element.image_url, alt: String(element.title || ""), loading: "lazy" });
      // A picture that does not load leaves no empty box: the card reads fine without it.
      picture.addEventListener("error", function () { picture.remove(); });
      item.appendChild(picture);
    }
    item.appendChild(body);
    return item;
  }

  // One bot message in rasa-webchat's shapes: {text, quick_replies?} | {attachment: image | template}.
  function addBotMessage(message, active) {
    if (!message || typeof message !== "object") return;
    var item = null;
    var attachment = message.attachment;
    if (attachment && attachment.type === "image" && attachment.payload && isHttpUrl(attachment.payload.src)) {
      item = el("li", { className: "message bot" }, [el("img", { className: "image", src: attachment.payload.src,
        alt: "Image from " + config.title, loading: "lazy" })]);
    } else if (attachment && attachment.type === "template" && attachment.payload
               && Array.isArray(attachment.payload.elements)) {
      item = el("li", { className: "cards-item" }, [el("ul", { className: "cards", "aria-label": "Products" },
        attachment.payload.elements.map(card))]);
    } else if (typeof message.text === "string") {
      item = el("li", { className: "message bot" });
      if (message.text) item.appendChild(richText(message.text));
      if (Array.isArray(message.quick_replies) && message.quick_replies.length) {
        item.appendChild(quickReplies(message.quick_replies, active));
      }
    }
    if (item) {
      messageList.insertBefore(item, typing);
      scrollToEnd();
    }
  }

  function renderHistory(entries) {
    messageList.textContent = "";
    typing = null;
    entries.forEach(function (entry, index) {
      if (entry.sender === "user") addUserMessage(entry.text || "");
      else addBotMessage(entry, index === entries.length - 1); // only the latest buttons still answer
    });
  }

  // -- panel ---------------------------------------------------------------------------------------

  function open() {
    panel.hidden = false;
    launcher.hidden = true;
    launcher.setAttribute("aria-expanded", "true");
    connect();
    input.focus();
    scrollToEnd();
  }

  function close() {
    panel.hidden = true;
    launcher.hidden = false;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  launcher.addEventListener("click", open);
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); close(); }
  });

  // -- connection ------------------------------------------------------------------------------------

  var state = { socket: null, sessionId: readStored(SESSION_KEY), confirmed: false, refused: false, queue: [] };

  function setStatus(text) { statusLine.textContent = text; }

  function setRefused(message) {
    state.refused = true;
    input.disabled = true;
    sendButton.disabled = true;
    showTyping(false);
    addNotice(message);
  }

  function loadSocketIo(done) {
    // Keep whatever `io` the store's page has: ours is taken and the global put back.
    var previous = window.io;
    var tag = document.createElement("script");
    tag.src = assetsUrl + "socket.io.min.js";
    tag.async = true;
    tag.onload = function () {
      var ours = window.io;
      if (previous === undefined) { try { delete window.io; } catch (e) { window.io = undefined; } }
      else window.io = previous;
      done(ours);
    };
    tag.onerror = function () { done(null); };
    document.head.appendChild(tag);
  }

  function browserTimeZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || null;
    } catch (e) {
      return null;
    }
  }

  function connect() {
    if (state.socket || state.connecting) return;
    state.connecting = true;
    setStatus("Connecting\u2026");
    loadSocketIo(function (io) {
      if (typeof io !== "function") {
        state.connecting = false;
        setStatus("");
        setRefused("The chat is unavailable right now. Please try again later.");
        return;
      }
      var auth = { device_key: deviceKey() };
      if (config.customerId) { auth.customer_id = config.customerId; auth.customer_token = config.customerToken; }
      var socket = io(serverUrl, { path: "/socket.io", auth: auth, reconnectionDelayMax: 10000 });
      state.socket = socket;

      socket.on("connect", function () {
        setStatus("");
        // greet: a new conversation opens with the assistant's greeting (a resumed one shows its transcript).
        // time_zone: the outbox keeps quiet hours in the shopper's own zone.
        socket.emit("session_request", { session_id: state.sessionId, greet: true, time_zone: browserTimeZone() });
      });
      socket.on("session_confirm", function (data) {
        var token = data && typeof data === "object" ? data.session_id : data;
        if (typeof token !== "string") return;
        state.sessionId = token;
        writeStored(SESSION_KEY, token);
      });
      // Follows every session_confirm: the conversation so far. Messages typed meanwhile are shown
      // after it and sent only now, so that they land in the conversation they are shown in.
      socket.on("session_history", function (entries) {
        renderHistory(Array.isArray(entries) ? entries : []);
        state.queue.forEach(function (queued) { addUserMessage(queued.display); });
        if (state.queue.length) showTyping(true);
        state.confirmed = true;
        flushQueue();
      });
      socket.on("bot_uttered", function (message) {
        showTyping(false);
        addBotMessage(message, true);
      });
      socket.on("user_echo", function (message) {
        if (message && typeof message.text === "string") addUserMessage(message.text);
      });
      socket.on("session_error", function (data) {
        var error = data && data.error;
        if (error === "invalid customer token") {
          setRefused("We couldn't confirm your account, so this chat is paused. Please sign in again or reload the page.");
        } else if (error) {
          showTyping(false);
          addNotice("Sorry, the chat had a problem: " + error);
        }
      });
      socket.on("disconnect", function () {
        state.confirmed = false;
        setStatus("Reconnecting\u2026");
      });
      socket.on("connect_error", function (error) {
        var refused = error && error.data && error.data.error;
        if (refused) {
          setStatus("");
          setRefused("The chat is unavailable right now.");
          socket.close();
        } else {
          setStatus("Reconnecting\u2026");
        }
      });
      socket.io.on("reconnect_attempt", function () { setStatus("Reconnecting\u2026"); });
    });
  }

  function flushQueue() {
    while (state.confirmed && state.queue.length) {
      state.socket.emit("user_uttered", state.queue.shift());
    }
  }

  // `display` is what the shopper saw (a button's title); `text` what the bot gets (its payload).
  function send(text, display) {
    if (state.refused) return;
    var message = String(text).trim();
    if (!message) return;
    addUserMessage(display || message);
    showTyping(true);
    state.queue.push({ message: message, display: display || message, session_id: state.sessionId });
    connect();
    flushQueue();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    input.value = "";
    send(text);
  });

  window.RapportWidget = {
    version: "1",
    open: open,
    close: close,
    send: function (text) { send(text); },
    get sessionId() { return state.sessionId; },
    storageKeys: { session: SESSION_KEY, device: DEVICE_KEY },
  };

  // A shopper who already chats here gets the conversation back without opening the panel first.
  if (state.sessionId) connect();
})();
