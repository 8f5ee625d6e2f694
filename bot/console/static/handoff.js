/* The live handoff page: new lines of the conversation arrive as server-sent events (the shopper's
   messages, every agent's replies and notes, delivery updates) and the reply box sends without a reload.
   Everything a shopper or an agent wrote is inserted as text, never as HTML. */
(function () {
  "use strict";
  var list = document.getElementById("live-transcript");
  if (!list || !window.EventSource) { return; }
  var notice = document.getElementById("handoff-notice");
  var liveStatus = document.getElementById("live-status");
  var after = list.getAttribute("data-after") || "0";
  var statusNames = { open: "open", waiting: "waiting for the shopper", closed: "closed" };

  function say(text) {
    if (!notice) { return; }
    notice.textContent = text;
    notice.hidden = !text;
  }

  function roleLabel(m) {
    if (m.role === "shopper") { return "Shopper"; }
    if (m.role === "agent") { return m.author; }
    if (m.role === "note") { return "Note · " + m.author; }
    if (m.role === "bot") { return "Bot"; }
    return m.author || "Event";
  }

  function render(m) {
    var item = list.querySelector('li[data-id="' + m.id + '"]');
    var fresh = !item;
    if (fresh) { item = document.createElement("li"); item.setAttribute("data-id", String(m.id)); }
    item.className = m.role;
    item.textContent = "";
    var role = document.createElement("span"); role.className = "role"; role.textContent = roleLabel(m);
    var at = document.createElement("time"); at.textContent = m.at;
    var text = document.createElement("span"); text.className = "text"; text.textContent = m.text;
    item.appendChild(role); item.appendChild(at); item.appendChild(text);
    if (m.delivery) {
      var delivery = document.createElement("span");
      delivery.className = "delivery " + m.delivery;
      delivery.textContent = m.delivery + (m.delivery_note ? " · " + m.delivery_note : "");
      item.appendChild(delivery);
    }
    if (fresh) { list.appendChild(item); item.scrollIntoView({ block: "nearest" }); }
  }

  var source = new EventSource(list.getAttribute("data-events") + "?after=" + encodeURIComponent(after));
  source.addEventListener("message", function (event) { render(JSON.parse(event.data)); });
  source.addEventListener("state", function (event) {
    var state = JSON.parse(event.data);
    var status = document.getElementById("handoff-status");
    if (status) { status.textContent = statusNames[state.status] || state.status; }
    var assignee = document.getElementById("handoff-assignee");
    if (assignee) { assignee.textContent = state.assignee || "nobody yet"; }
    if (liveStatus) {
      liveStatus.textContent = state.status === "closed"
        ? "This conversation is closed" + (state.resolution === "returned_to_bot" ? ": the bot has it again." :
          state.resolution === "shopper_returned" ? ": the shopper went back to the bot." : ".")
        : "New messages appear here as the shopper writes.";
    }
    var form = document.getElementById("reply-form");
    if (form) { form.querySelector("button").disabled = state.status === "closed"; }
  });

  var form = document.getElementById("reply-form");
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button");
      var box = form.querySelector("textarea");
      button.disabled = true;
      fetch(form.action, {
        method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" },
        body: new URLSearchParams(new FormData(form))
      }).then(function (response) {
        return response.json().then(function (answer) {
          if (answer.ok) { box.value = ""; say(""); } else { say(answer.error || "The reply was not sent."); }
        });
      }).catch(function () {
        say("The reply could not be sent: check the connection and try again.");
      }).then(function () { button.disabled = false; box.focus(); });
    });
  }
}());
