// The local verifier page: sends the package to this server's /api/verify and shows the
// report. Every piece of data is written with textContent, never parsed as HTML: a package is
// untrusted input, and so are the server's messages quoting it.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const BADGE = { pass: "PASS", fail: "FAIL", skip: "SKIPPED" };
  const MEANING_LABEL = {
    pass: "What this means: ",
    fail: "What a pass would have meant: ",
    skip: "What it would show: ",
  };

  let maxBytes = 1 << 20;
  let source = null; // {label, body}: the package to verify, from a file or the paste box
  let sequence = 0; // answers to an older request are dropped

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function short(hex) {
    return hex.length > 20 ? `${hex.slice(0, 16)}…` : hex;
  }

  // --- the loaded epochs -------------------------------------------------------------------

  async function loadEpochs() {
    const status = $("epochs-status");
    try {
      const answer = await fetch("/api/epochs", { cache: "no-store" });
      const info = await answer.json();
      maxBytes = info.max_package_bytes || maxBytes;
      const list = $("epochs");
      clear(list);
      for (const e of info.epochs) {
        const item = el("li", "epoch");
        item.append(el("strong", null, `Epoch ${e.epoch}`));
        item.append(el("span", "muted", ` · ${e.batches} batch proof(s)`));
        const sha = el("div", "mono");
        sha.append(el("span", "label", "manifest sha256 "), el("code", null, e.manifest_sha256));
        const root = el("div", "mono");
        root.append(el("span", "label", "root "), el("code", null, e.root));
        item.append(sha, root);
        list.append(item);
      }
      status.textContent = info.epochs.length
        ? "Compare the manifest hash with the one your exchange published."
        : "No epoch bundle loaded: only your own data can be checked here.";
      if (info.rpc) {
        const chain = $("chain");
        chain.textContent = `Also checked against the chain at ${info.rpc}` +
          (info.registry ? ` (registry ${info.registry}).` : " (the registry your package names).");
        chain.hidden = false;
      }
    } catch (err) {
      status.textContent = `Could not list the epochs: ${err.message}`;
    }
  }

  // --- choosing the package ----------------------------------------------------------------

  function setSource(next) {
    source = next;
    $("verify").disabled = source === null;
  }

  async function chooseFile(file) {
    if (!file) return;
    $("paste").value = "";
    $("file-name").textContent = `${file.name} (${file.size.toLocaleString()} bytes)`;
    if (file.size > maxBytes) {
      setSource(null);
      showError(`${file.name} is larger than ${maxBytes / 1024} kB: it is not an inclusion package.`);
      return;
    }
    setSource({ label: `file ${file.name}`, body: await file.arrayBuffer() });
    verify();
  }

  $("file").addEventListener("change", (event) => chooseFile(event.target.files[0]));

  $("paste").addEventListener("input", () => {
    const text = $("paste").value;
    $("file").value = "";
    $("file-name").textContent = "";
    setSource(text.trim() ? { label: "the pasted text", body: text } : null);
  });

  $("paste").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && source) verify();
  });

  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    chooseFile(event.dataTransfer.files[0]);
  });
  // A file dropped beside the zone would make the browser open it instead of this page.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => event.preventDefault());
  }

  $("verify").addEventListener("click", () => verify());

  // --- verifying ---------------------------------------------------------------------------

  async function verify() {
    if (!source) return;
    const mine = ++sequence;
    const label = source.label;
    $("verify").disabled = true;
    $("busy").hidden = false;
    try {
      const answer = await fetch("/api/verify", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: source.body,
      });
      let report;
      try {
        report = await answer.json();
      } catch {
        report = { error: `the verifier answered ${answer.status} ${answer.statusText}` };
      }
      if (mine !== sequence) return;
      if (!answer.ok || report.error) showError(report.error || `HTTP ${answer.status}`);
      else showReport(report, label);
    } catch (err) {
      if (mine === sequence) showError(`Could not reach the local verifier: ${err.message}`);
    } finally {
      if (mine === sequence) {
        $("busy").hidden = true;
        $("verify").disabled = source === null;
      }
    }
  }

  function showError(message) {
    $("result").hidden = true;
    $("error-text").textContent = message;
    $("error").hidden = false;
  }

  function showReport(r, label) {
    $("error").hidden = true;

    const verdict = $("verdict");
    verdict.className = `verdict ${r.ok ? "ok" : "bad"}`;
    $("verdict-word").textContent = r.ok ? "VERIFIED" : "NOT VERIFIED";
    const first = (r.summary[0] || "").replace(/^(NOT )?VERIFIED: /, "");
    $("verdict-text").textContent = first.charAt(0).toUpperCase() + first.slice(1);
    const more = $("verdict-more");
    clear(more);
    for (const c of r.checks.filter((c) => c.status === "fail")) {
      const item = el("li", "failed-check");
      item.append(el("strong", null, "Failed check: "), el("span", null, c.title));
      more.append(item);
    }
    if (!r.ok) for (const line of r.summary.slice(1)) more.append(el("li", null, line));
    // What the trust anchors left open stays beside a verified verdict, not only below it.
    for (const u of r.unpinned || []) more.append(el("li", "unpinned", `Caution: ${u}`));

    $("source").textContent = `Checked: ${label}` + (r.bundle
      ? `, against epoch ${r.bundle.epoch} (manifest sha256 ${short(r.bundle.manifest_sha256)}).`
      : ".");
    $("bundle-note").textContent = r.bundle_note || "";
    $("bundle-note").hidden = !r.bundle_note;

    showAccount(r);

    const checks = $("checks");
    clear(checks);
    for (const c of r.checks) {
      const row = el("li", `check ${c.status}`);
      row.dataset.key = c.key;
      row.dataset.status = c.status;
      const head = el("div", "check-head");
      head.append(el("span", `badge ${c.status}`, BADGE[c.status] || c.status));
      head.append(el("h3", "check-title", c.title));
      row.append(head);
      const found = el("p", "detail");
      found.append(el("span", "label", "Found: "), el("span", "detail-text", c.detail));
      const meaning = el("p", "meaning");
      meaning.append(
        el("span", "label", MEANING_LABEL[c.status] || "Meaning: "),
        el("span", "meaning-text", c.meaning),
      );
      row.append(found, meaning);
      checks.append(row);
    }

    const warnings = $("warnings");
    clear(warnings);
    for (const w of r.warnings) warnings.append(el("li", null, w));
    $("warnings-box").hidden = r.warnings.length === 0;

    const notProven = $("not-proven");
    clear(notProven);
    for (const line of r.not_proven) {
      notProven.append(el("li", null, line.charAt(0).toUpperCase() + line.slice(1)));
    }

    $("result").hidden = false;
    verdict.scrollIntoView({ block: "nearest" });
  }

  function showAccount(r) {
    const facts = $("account-facts");
    clear(facts);
    const fact = (term, value) => {
      if (value === null || value === undefined) return;
      facts.append(el("dt", null, term), el("dd", "mono", value));
    };
    fact("Account", r.account_id);
    fact("Epoch", r.epoch);
    fact("Tree root", r.root);

    const rows = $("balances").tBodies[0];
    clear(rows);
    for (const [asset, b] of Object.entries(r.balances || {})) {
      const tr = el("tr");
      tr.append(el("th", null, asset), el("td", "num", b.equity), el("td", "num", b.debt));
      tr.firstChild.scope = "row";
      rows.append(tr);
    }

    const m = r.margin || {};
    const positions = $("positions").tBodies[0];
    clear(positions);
    for (const [inst, qty] of Object.entries(m.positions || {})) {
      const tr = el("tr");
      tr.append(el("th", null, inst), el("td", "num", qty));
      tr.firstChild.scope = "row";
      positions.append(tr);
    }
    $("positions").hidden = Object.keys(m.positions || {}).length === 0;
    $("headroom").textContent = m.headroom_usd === undefined
      ? ""
      : `Margin headroom: ${m.headroom_usd} USD above the requirement in the worst published ` +
        `scenario (${m.worst_label}).`;
    $("margin").hidden = m.headroom_usd === undefined;
    $("account").hidden = r.account_id === null || r.account_id === undefined;
  }

  loadEpochs();
})();
