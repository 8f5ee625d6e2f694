/* The Segments page: the filter editor's rows are read into the filter's JSON on every change, and the
   segment's size and first members (with the reason each matches) are asked for, debounced, from
   /console/segments/preview. Names and reasons are inserted as text, never as HTML. */
(function () {
  "use strict";
  var conditions = document.getElementById("conditions");
  var json = document.getElementById("filter-json");
  if (!conditions || !json || !window.fetch) { return; }
  var saveFilter = document.getElementById("save-filter");
  var size = document.getElementById("segment-size");
  var description = document.getElementById("segment-description");
  var problem = document.getElementById("segment-problem");
  var tbody = document.querySelector("#member-table tbody");
  var none = document.getElementById("no-members");
  var exportLink = document.getElementById("export-link");
  var chooser = document.getElementById("new-condition");
  var timer = null;
  var asked = 0;

  function filterFromRows() {
    var list = [];
    conditions.querySelectorAll("fieldset.condition").forEach(function (row) {
      var condition = { kind: row.getAttribute("data-kind") };
      row.querySelectorAll("[data-field]").forEach(function (input) {
        if (input.value !== "") { condition[input.getAttribute("data-field")] = input.value; }
      });
      list.push(condition);
    });
    return { conditions: list };
  }

  function show(data) {
    problem.hidden = true;
    size.textContent = data.count.toLocaleString("en-US");
    description.textContent = data.description;
    tbody.textContent = "";
    data.members.forEach(function (m) {
      var row = document.createElement("tr");
      var who = document.createElement("td"); who.setAttribute("data-label", "Customer");
      var link = document.createElement("a"); link.href = "/console/customers/" + m.id; link.textContent = m.name;
      var email = document.createElement("span"); email.className = "muted"; email.textContent = " " + m.email;
      who.appendChild(link); who.appendChild(email);
      var why = document.createElement("td"); why.setAttribute("data-label", "Why"); why.textContent = m.reason;
      row.appendChild(who); row.appendChild(why); tbody.appendChild(row);
    });
    none.hidden = data.members.length > 0;
    if (exportLink) { exportLink.href = data.export_url; }
  }

  function refresh(text) {
    var mine = ++asked;
    size.setAttribute("aria-busy", "true");
    fetch("/console/segments/preview?filter=" + encodeURIComponent(text), { credentials: "same-origin" })
      .then(function (response) { return response.json().then(function (data) { return [response.ok, data]; }); })
      .then(function (answer) {
        if (mine !== asked) { return; }  // a later change is already on its way
        size.removeAttribute("aria-busy");
        if (answer[0]) { show(answer[1]); } else { problem.textContent = answer[1].error; problem.hidden = false; }
      })
      .catch(function () {
        if (mine !== asked) { return; }
        size.removeAttribute("aria-busy");
        problem.textContent = "The size could not be updated; try again."; problem.hidden = false;
      });
  }

  function changed(fromJson) {
    var text = fromJson ? json.value : JSON.stringify(filterFromRows(), null, 1);
    if (!fromJson) { json.value = text; }
    if (saveFilter) { saveFilter.value = text; }
    clearTimeout(timer);
    timer = setTimeout(function () { refresh(text); }, 300);
  }

  conditions.addEventListener("input", function () { changed(false); });
  conditions.addEventListener("change", function () { changed(false); });
  conditions.addEventListener("click", function (event) {
    if (event.target.classList.contains("remove-condition")) {
      event.target.closest("fieldset.condition").remove();
      changed(false);
    }
  });
  json.addEventListener("input", function () { changed(true); });
  chooser.addEventListener("change", function () {
    var template = document.getElementById("condition-" + chooser.value);
    if (!template) { return; }
    conditions.appendChild(template.content.cloneNode(true));
    chooser.value = "";
    var fresh = conditions.lastElementChild;
    var first = fresh && fresh.querySelector("[data-field]");
    if (first) { first.focus(); }
    changed(false);
  });
}());
