// The SRE dashboard: polls the /api/v1/performance endpoints and redraws, without reload.
// The key lives in one variable of this closure: never in the URL, storage, or cookies.
(() => {
  "use strict";
  const interval = Number(document.body.dataset.intervalMs) || 2000;
  const HISTORY = 60; // points kept per series (2 min at 2 s)
  const base = "/api/v1/performance";
  const endpoints = {
    summary: `${base}/metrics/summary`,
    budgets: `${base}/budgets`,
    cache: `${base}/cache/stats`,
    breakers: `${base}/circuit-breakers`,
    slow: `${base}/slow-queries`,
  };
  const history = new Map(); // route -> [p95 1 min, ...]
  const throughput = [];
  let key = null;
  let timer = null;
  let polls = 0;

  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function ms(value) {
    return value === null || value === undefined ? "–" : `${Number(value).toFixed(1)} ms`;
  }

  function time(epochSeconds) {
    return epochSeconds ? new Date(epochSeconds * 1000).toLocaleTimeString() : "–";
  }

  function spark(svg, values, limit) {
    const ns = "http://www.w3.org/2000/svg";
    const [, , width, height] = svg.getAttribute("viewBox").split(" ").map(Number);
    const top = Math.max(limit || 0, ...values, 1) * 1.1;
    svg.replaceChildren();
    if (limit) {
      const line = document.createElementNS(ns, "line");
      const y = height - (limit / top) * height;
      line.setAttribute("x1", "0");
      line.setAttribute("x2", String(width));
      line.setAttribute("y1", y.toFixed(1));
      line.setAttribute("y2", y.toFixed(1));
      svg.appendChild(line);
    }
    const points = values.map((v, i) => {
      const x = values.length > 1 ? (i / (values.length - 1)) * width : 0;
      return `${x.toFixed(1)},${(height - (v / top) * height).toFixed(1)}`;
    });
    const polyline = document.createElementNS(ns, "polyline");
    polyline.setAttribute("points", points.join(" "));
    svg.appendChild(polyline);
  }

  function push(series, value) {
    series.push(value);
    if (series.length > HISTORY) series.shift();
  }

  function fill(table, rows) {
    const body = table.tBodies[0];
    body.replaceChildren(...rows);
    if (!rows.length) {
      const tr = el("tr");
      const td = el("td", "no data yet", "muted");
      td.colSpan = table.tHead.rows[0].cells.length;
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  function row(cells) {
    const tr = el("tr");
    for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
    return tr;
  }

  function drawSummary(summary) {
    let rate = 0;
    let errors = 0;
    const rows = [];
    for (const route of summary.routes) {
      const [m1, m5] = [route.windows["1m"], route.windows["5m"]];
      rate += m1.ratePerS;
      errors += m1.errors;
      if (!history.has(route.route)) history.set(route.route, []);
      push(history.get(route.route), m1.p95 || 0);
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", "0 0 160 32");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.classList.add("spark");
      spark(svg, history.get(route.route), route.budgetMs);
      const graph = el("td");
      graph.appendChild(svg);
      const tr = row([
        el("td", route.route),
        el("td", ms(route.budgetMs), "num"),
        el("td", ms(m1.p95), "num"),
        el("td", ms(m5.p95), "num"),
        el("td", ms(m1.p99), "num"),
        el("td", m1.ratePerS.toFixed(2), "num"),
        el("td", m1.errors, "num"),
        el("td", route.status, route.status),
        graph,
      ]);
      tr.dataset.route = route.route;
      rows.push(tr);
    }
    fill($("routes"), rows);
    push(throughput, rate);
    spark($("throughput"), throughput, 0);
    $("rate").textContent = rate.toFixed(2);
    $("errors").textContent = String(errors);
    $("inflight").textContent = String(summary.inflight);
    $("workers").textContent = `${summary.workers.length} worker(s): ${summary.workers
      .map((w) => w.pid)
      .join(", ")}`;
  }

  function drawBudgets(budgets) {
    const list = $("alerts");
    const items = budgets.alerts.map((a) =>
      el("li", `${a.severity}: ${a.rule} on ${a.route} since ${time(a.since)}`, a.severity),
    );
    list.replaceChildren(...(items.length ? items : [el("li", "none", "muted")]));
  }

  function drawCache(cache) {
    $("degraded").textContent = cache.degraded ? "degraded: in-process tier only" : "";
    const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)} %`);
    fill(
      $("cache"),
      cache.kinds.map((k) => {
        const className = k.meetsTarget === false ? "breached" : k.meetsTarget ? "ok" : "";
        const tr = row([
          el("td", k.kind),
          el("td", pct(k.hitRate), `num ${className}`),
          el("td", k.target === null ? "–" : `> ${pct(k.target)}`, "num"),
          el("td", k.hits, "num"),
          el("td", k.stale, "num"),
          el("td", k.misses, "num"),
          el("td", k.tiers.local, "num"),
          el("td", k.tiers.redis, "num"),
        ]);
        tr.dataset.kind = k.kind;
        return tr;
      }),
    );
  }

  function drawBreakers(breakers) {
    fill(
      $("breakers"),
      breakers.breakers.map((b) => {
        const tr = row([
          el("td", b.name),
          el("td", b.state, `state ${b.state}`),
          el("td", b.failures, "num"),
          el("td", time(b.openedAt)),
          el("td", time(b.nextTryAt)),
          el("td", b.workers.map((w) => `${w.pid}: ${w.state}`).join(", ")),
        ]);
        tr.dataset.breaker = b.name;
        tr.dataset.state = b.state;
        return tr;
      }),
    );
  }

  function planText(plan) {
    if (!plan) return "–";
    if (plan.status === "pending") return "explain pending";
    if (!plan.available) return `no plan: ${plan.reason}`;
    return `${plan.stages.join(" ← ")}${plan.index ? ` (${plan.index})` : ""}; keys ${plan.keysExamined}, docs ${plan.docsExamined}, returned ${plan.returned}`;
  }

  function drawSlow(slow) {
    $("threshold").textContent = `over ${slow.thresholdMs} ms`;
    fill(
      $("slow"),
      slow.queries.slice(0, 20).map((q) => {
        const shape = el("td");
        shape.appendChild(el("code", JSON.stringify(q.shape)));
        return row([
          el("td", time(q.at)),
          el("td", q.command),
          el("td", q.collection),
          el("td", q.ms.toFixed(1), "num"),
          shape,
          el("td", planText(q.plan)),
        ]);
      }),
    );
  }

  async function get(url) {
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${key}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail || detail;
      } catch (_) {
        // not JSON: keep the status text
      }
      throw new Error(`${response.status}: ${detail}`);
    }
    return response.json();
  }

  async function poll() {
    try {
      const [summary, budgets, cache, breakers, slow] = await Promise.all(
        Object.values(endpoints).map(get),
      );
      drawSummary(summary);
      drawBudgets(budgets);
      drawCache(cache);
      drawBreakers(breakers);
      drawSlow(slow);
      polls += 1;
      const status = $("status");
      status.className = "status";
      status.dataset.polls = String(polls);
      status.textContent = `updated ${new Date().toLocaleTimeString()} (update ${polls}, every ${interval / 1000} s)`;
    } catch (error) {
      const status = $("status");
      status.className = "status error";
      status.textContent = `could not update: ${error.message}`;
      if (/^40[13]/.test(error.message)) stop();
    }
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }

  $("connect").addEventListener("click", () => {
    const input = $("key");
    key = input.value.trim();
    input.value = ""; // out of the DOM as soon as it is read
    stop();
    if (!key) return;
    poll();
    timer = setInterval(poll, interval);
  });
  $("key").addEventListener("keydown", (event) => {
    if (event.key === "Enter") $("connect").click();
  });
})();
