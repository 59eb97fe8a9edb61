/*
 * live.js: the live stream of a hunt page (DESIGN section 7). Plain ES2020, no framework, no build step.
 *
 * Every page works without this file; it only makes a page update in place. It runs on pages whose
 * <body> carries data-ws and either data-team (a player on a team) or data-staff: anybody else would be
 * refused by the server anyway (4401 or 4403), so spectators open no socket at all.
 *
 * Seqs, per stream ("team" and "hunt"):
 * - The page is the state at the seqs it was rendered with: body data-team-seq / data-hunt-seq seed
 *   the last seq held. When a seed is missing (a stream the page did not render, or a team that changed)
 *   the hello's head is taken as is: the page has nothing older to catch up with, and a resume from 0 would
 *   replay the whole history (up to 500 frames per stream) as a burst of stale toasts. A seed above the
 *   hello's head (a database restored from a backup) is lowered to the head.
 * - After the hello, and after every reconnect, the client resumes from what it holds when a head is ahead.
 * - A logged frame with seq <= held is dropped; seq == held + 1 is applied; a larger seq is a gap: it is
 *   not applied, and a resume from the held seq replays it in order with whatever was missed.
 * - Every 10 s a ping; a pong head above the held seq, or null (a restarted Redis lost the cached head,
 *   and with it possibly pushes), triggers a resume. No frame at all for 25 s: the connection is dead.
 * Every update is idempotent by id (guess id, puzzle slug, hint id, ...), so a frame applied twice (the
 * page rendered after the event, and the event replayed) changes nothing.
 *
 * Reconnects: exponential backoff with equal jitter (1 s doubling to 30 s, each wait between half and all
 * of it), reset by a hello. Close 4401: reconnect once (the session may have just been renewed), stop if
 * 4401 again. 4403 and 4404: stop. 4429 (flooding): wait at least 30 s.
 *
 * Guesses on the puzzle page go over the socket (guess.submit with a random id, also written into the
 * form's client_id) while the stream is live; otherwise, or when the socket fails before the answer, the
 * form is posted as usual with the same client_id, so the server records the guess once.
 *
 * Server data is inserted only as text (textContent, text nodes, attribute values), never as HTML.
 */
(() => {
  "use strict";

  const body = document.body;
  const hunt = body.dataset.hunt;
  const wsPath = body.dataset.ws;
  if (!hunt || !wsPath || !("WebSocket" in window)) return;
  if (!body.dataset.team && !body.dataset.staff) return;

  const PING_EVERY_MS = 10_000;
  const SILENCE_LIMIT_MS = 25_000;
  const HELLO_LIMIT_MS = 60_000;
  const BACKOFF_FIRST_MS = 1_000;
  const BACKOFF_MAX_MS = 30_000;
  const FLOOD_BACKOFF_MS = 30_000;
  const GUESS_TIMEOUT_MS = 8_000;
  const TOAST_MS = 8_000;
  const TOASTS_SHOWN = 4;
  const CATCH_UP_TOASTS = 3;
  const STREAMS = ["hunt", "team"];
  const VERDICTS = { correct: "Correct", partial: "Partial", incorrect: "Incorrect", pending: "Checking…" };
  const CLOSE = { unauthenticated: 4401, forbidden: 4403, notFound: 4404, flooding: 4429 };

  // --- Small DOM helpers ---------------------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const attr = (name, value) => `[${name}="${CSS.escape(String(value))}"]`;

  /** An element with attributes and children; strings become text nodes (never parsed as HTML). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** Multi-line text as text nodes and <br>s (what the templates' linebreaksbr renders). */
  function lines(text) {
    const fragment = document.createDocumentFragment();
    String(text ?? "")
      .split(/\r\n|\r|\n/)
      .forEach((line, i) => {
        if (i) fragment.append(el("br"));
        fragment.append(line);
      });
    return fragment;
  }

  function flash(node) {
    node.classList.remove("live-new");
    void node.offsetWidth; // restart the animation
    node.classList.add("live-new");
    setTimeout(() => node.classList.remove("live-new"), 2_500);
  }

  const pad = (n) => String(n).padStart(2, "0");
  const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

  function utc(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? null : date;
  }
  const hhmm = (iso) => {
    const d = utc(iso);
    return d ? `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}` : "";
  };
  const hhmmss = (iso) => {
    const d = utc(iso);
    return d ? `${hhmm(iso)}:${pad(d.getUTCSeconds())}` : "";
  };
  const dayTime = (iso) => {
    const d = utc(iso);
    return d ? `${DAYS[d.getUTCDay()]} ${hhmm(iso)}` : "";
  };

  function intOrNull(value) {
    const n = Number.parseInt(value ?? "", 10);
    return Number.isInteger(n) && n >= 0 ? n : null;
  }

  function randomId() {
    if (window.crypto?.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // --- Indicator and toasts ------------------------------------------------------------------------

  // The indicator's and toasts' styles are in site.css ("Live updates"): the CSP allows no <style>.

  const STATUS_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…" };
  const indicator = el("span", { id: "live-status", class: "live-status", role: "status", "aria-live": "polite" });
  const headerRow = $(".header-row");
  const userNav = headerRow && $(".user-nav", headerRow);
  if (userNav) userNav.before(indicator);
  else (headerRow || body).prepend(indicator);

  /** connecting | live | reconnecting | offline (stopped, with the reason as its text). */
  function setStatus(state, text) {
    if (indicator.dataset.state === state && !text) return;
    indicator.dataset.state = state;
    indicator.textContent = text || STATUS_TEXT[state];
    indicator.title = state === "live" ? "Updates arrive as they happen." : "";
  }

  const toastRegion = el("div", {
    id: "live-toasts",
    class: "live-toasts",
    role: "status",
    "aria-live": "polite",
    "aria-relevant": "additions",
  });
  body.append(toastRegion);

  // Replays (after a reconnect) show a few toasts, then one line for the rest.
  let catchingUp = false;
  let caughtUpToasts = 0;

  function toast(text, tone = "") {
    if (catchingUp && ++caughtUpToasts > CATCH_UP_TOASTS) return;
    const close = el("button", { type: "button", class: "link", "aria-label": "Dismiss" }, "×");
    const node = el("div", { class: `live-toast ${tone}`.trim() }, el("span", {}, text), close);
    close.addEventListener("click", () => node.remove());
    toastRegion.append(node);
    while (toastRegion.children.length > TOASTS_SHOWN) toastRegion.firstElementChild.remove();
    setTimeout(() => node.remove(), TOAST_MS);
  }

  function finishCatchUp() {
    const extra = caughtUpToasts - CATCH_UP_TOASTS;
    catchingUp = false;
    caughtUpToasts = 0;
    if (extra > 0) toast(`…and ${extra} more update${extra === 1 ? "" : "s"} while you were away.`);
  }

  /** The page's message list (the one Django's messages use), created when the page has none. */
  function showMessage(level, text) {
    let list = $("#messages");
    if (!list) {
      list = el("ul", { class: "messages", id: "messages", role: "status", "aria-live": "polite" });
      ($("#main") || body).prepend(list);
    }
    list.replaceChildren(el("li", { class: level }, text));
  }

  // --- Connection state ----------------------------------------------------------------------------

  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const wsUrl = `${scheme}//${location.host}${wsPath}`;
  const page = {
    team: body.dataset.team || null,
    puzzle: $("h1[data-puzzle]")?.dataset.puzzle || null,
  };

  // Last applied seq per stream (null: the stream is not carried), and the highest seq any frame or head
  // has shown (applied or not), which is what a resume must reach.
  const held = { hunt: intOrNull(body.dataset.huntSeq), team: intOrNull(body.dataset.teamSeq) };
  const highest = { hunt: 0, team: 0 };
  let carried = [];
  let me = null;
  let myTeam = null;

  let ws = null;
  let ready = false; // hello received on the current socket
  let attempts = 0;
  let reconnectTimer = null;
  let pingTimer = null;
  let lastFrameAt = 0;
  let retriedUnauthenticated = false;
  let stopped = false;
  let sessionEnded = false;

  let resuming = false;
  let resumeAgain = false;
  let resumeFrom = null;
  let highestAtResume = null;

  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  function connect() {
    reconnectTimer = null;
    if (stopped) return;
    setStatus(attempts ? "reconnecting" : "connecting");
    let socket;
    try {
      socket = new WebSocket(wsUrl);
    } catch {
      scheduleReconnect();
      return;
    }
    ws = socket;
    ready = false;
    socket.onopen = () => {
      if (socket !== ws) return;
      lastFrameAt = Date.now();
      pingTimer = setInterval(ping, PING_EVERY_MS);
    };
    socket.onmessage = (event) => {
      if (socket !== ws) return;
      lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame === "object" && typeof frame.type === "string") receive(frame);
    };
    socket.onclose = (event) => {
      if (socket === ws) lost(event.code);
    };
  }

  function ping() {
    if (!ready) {
      // Before the hello there is nothing to ping (pongs would queue behind it). In a connect storm the hello
      // can take a while: only a very long wait means the connection is dead.
      if (Date.now() - lastFrameAt > HELLO_LIMIT_MS) drop();
      return;
    }
    if (Date.now() - lastFrameAt > SILENCE_LIMIT_MS) {
      // Not even a pong: the connection is dead without having said so (a sleeping laptop, a dropped NAT).
      drop();
      return;
    }
    send({ type: "ping" });
  }

  function drop() {
    const socket = ws;
    ws = null;
    socket?.close();
    lost(1006);
  }

  function lost(code) {
    ws = null;
    ready = false;
    clearInterval(pingTimer);
    pingTimer = null;
    resuming = false;
    resumeAgain = false;
    if (catchingUp) finishCatchUp();
    postPendingGuess();
    if (sessionEnded) return stop("Not live: you were logged out.");
    if (code === CLOSE.unauthenticated) {
      if (retriedUnauthenticated) return stop("Not live: please log in again.");
      retriedUnauthenticated = true;
    } else if (code === CLOSE.forbidden) {
      return stop("Not live: you are not on a team in this hunt.");
    } else if (code === CLOSE.notFound) {
      return stop("Not live: this hunt is not available.");
    }
    scheduleReconnect(code === CLOSE.flooding ? FLOOD_BACKOFF_MS : 0);
  }

  function scheduleReconnect(atLeast = 0) {
    setStatus("reconnecting");
    const ceiling = Math.max(atLeast, Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempts));
    attempts += 1;
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  function stop(reason) {
    stopped = true;
    clearTimeout(reconnectTimer);
    setStatus("offline", reason);
  }

  window.addEventListener("online", () => {
    // Back on the network: try now instead of waiting out the backoff.
    if (reconnectTimer && !stopped) {
      clearTimeout(reconnectTimer);
      connect();
    }
  });

  // --- Frames --------------------------------------------------------------------------------------

  function receive(frame) {
    switch (frame.type) {
      case "hello":
        return onHello(frame);
      case "pong":
        return onPong(frame);
      case "resume.done":
        return onResumeDone(frame);
      case "guess.accepted":
        return onGuessAccepted(frame);
      case "error":
        return onError(frame);
      case "presence":
        return safely(() => renderPresence(frame.online));
      case "leaderboard.updated":
        return safely(() => onLeaderboard(frame.top));
      case "session.ended":
        sessionEnded = true;
        return;
      default:
        if (frame.stream === "team" || frame.stream === "hunt") return onLogged(frame);
        if (frame.stream === "staff") return safely(() => applyStaff(frame));
    }
  }

  function safely(update) {
    try {
      update();
    } catch (exc) {
      // One page region that does not look as expected must not stop the stream.
      console.warn("live.js: could not apply an update", exc);
    }
  }

  function onHello(frame) {
    ready = true;
    attempts = 0;
    retriedUnauthenticated = false;
    me = frame.user;
    myTeam = frame.team;
    if (page.team && frame.team?.slug !== page.team) {
      // The page shows another team's state: its team seq means nothing for this stream.
      held.team = null;
      page.team = frame.team?.slug ?? null;
      toast("Your team changed since this page was loaded: reload it to see your team.", "bad");
    }
    carried = [];
    for (const stream of STREAMS) {
      const head = frame[`${stream}_seq`];
      if (typeof head !== "number") {
        held[stream] = null;
        continue;
      }
      carried.push(stream);
      if (held[stream] === null || held[stream] > head) held[stream] = head;
      highest[stream] = head; // read from the database after joining the groups: nothing seen is above it
    }
    setStatus("live");
    catchUp();
    enableSocketGuesses();
  }

  function onPong(frame) {
    const unknown = [];
    for (const stream of carried) {
      const head = frame[`${stream}_seq`];
      if (typeof head === "number") highest[stream] = Math.max(highest[stream], head);
      else unknown.push(stream);
    }
    catchUp(unknown);
  }

  /** Resume every carried stream that is behind (or in `force`) from the held seq; one resume at a time. */
  function catchUp(force = []) {
    if (!ready) return;
    if (resuming) {
      resumeAgain = true;
      return;
    }
    const frame = { type: "resume" };
    let any = false;
    for (const stream of carried) {
      if (force.includes(stream) || highest[stream] > held[stream]) {
        frame[`${stream}_seq`] = held[stream];
        any = true;
      }
    }
    if (!any || !send(frame)) return;
    resuming = true;
    resumeAgain = false;
    resumeFrom = { ...held };
    highestAtResume = { ...highest };
    catchingUp = true;
    caughtUpToasts = 0;
  }

  function onResumeDone(frame) {
    resuming = false;
    finishCatchUp();
    for (const stream of carried) {
      const head = frame[`${stream}_seq`];
      if (typeof head === "number") highest[stream] = Math.max(highest[stream], head);
    }
    const behind = carried.some((s) => highest[s] > held[s]);
    const progressed = carried.some((s) => held[s] > resumeFrom[s]);
    const newsSince = carried.some((s) => highest[s] > highestAtResume[s]);
    // No progress and nothing new: wait for the next pong instead of asking again at once.
    if ((frame.more || resumeAgain || behind) && (progressed || newsSince)) catchUp();
    resumeAgain = false;
  }

  function onLogged(frame) {
    const stream = frame.stream;
    if (!carried.includes(stream) || typeof frame.seq !== "number") return;
    highest[stream] = Math.max(highest[stream], frame.seq);
    if (frame.seq <= held[stream]) return;
    if (frame.seq > held[stream] + 1) {
      catchUp();
      return;
    }
    held[stream] = frame.seq;
    safely(() => apply(frame));
  }

  function onError(frame) {
    if (pendingGuess && frame.id === pendingGuess.id) return guessRefused(frame);
    if (frame.code === "bad_seq") {
      // Held seqs above the server's heads: the next hello lowers them.
      ws?.close();
      return;
    }
    console.info("live.js: the server answered", frame.code, frame.message);
  }

  // --- Logged events ---------------------------------------------------------------------------

  function apply(frame) {
    const data = frame.data || {};
    switch (frame.type) {
      case "guess.pending":
      case "guess.judged":
        upsertGuess(data.guess);
        break;
      case "puzzle.unlocked":
        addPuzzle(data.puzzle);
        toast(`New puzzle open: ${data.puzzle.title}`, "gold");
        break;
      case "puzzle.solved":
        markSolved(data.puzzle.slug, frame.at, data.answer);
        toast(
          `${data.by && data.by !== me ? data.by : "Your team"} solved ${data.puzzle.title}! +${data.points} points`,
          "ok"
        );
        refreshTeam();
        break;
      case "hint.unlocked":
        showHint(data);
        toast(`Hint unlocked on ${puzzleTitle(data.puzzle)}.`);
        if (data.hint?.cost) refreshTeam();
        break;
      case "hint.answered":
        showAnswer(data);
        toast(`An organizer answered your question on ${puzzleTitle(data.puzzle)}.`);
        break;
      case "treasure.found":
        treasureFound(data);
        toast(
          `Your team found ${data.treasure.name}! Finder #${data.rank}${data.points ? `, +${data.points} points` : ""}.`,
          "gold"
        );
        refreshTeam();
        break;
      case "treasure.claimed":
        treasureClaimed(data, frame.at);
        if (data.team?.slug !== myTeam?.slug) toast(`${data.team.name} found ${data.treasure.name} (#${data.rank}).`);
        break;
      case "treasure.clue":
        treasureClue(data);
        toast(`New clue for ${data.treasure.name}: ${data.clue}`, "gold");
        break;
      case "member.joined":
        addMember(data.user);
        if (data.user !== me) toast(`${data.user} joined your team.`);
        refreshTeam();
        break;
      case "member.left":
        removeMember(data.user);
        if (data.user !== me) toast(`${data.user} left your team.`);
        refreshTeam();
        break;
      case "score.adjusted":
        toast(`${data.points >= 0 ? "+" : ""}${data.points} points: ${data.reason}`, data.points >= 0 ? "ok" : "bad");
        refreshTeam();
        break;
      case "announcement.posted":
        addAnnouncement(data, frame.at);
        toast(`Announcement: ${data.text}`);
        break;
      case "erratum.posted":
        if (hasPuzzle(data.puzzle)) {
          addErratum(data, frame.at);
          toast(`Erratum for ${puzzleTitle(data.puzzle)}: ${data.text}`, "bad");
        }
        break;
      case "hunt.started": {
        const rendered = body.dataset.huntState;
        setHuntState("running", "running");
        toast("The hunt has started!", "ok");
        // Puzzles without unlock rules open with the hunt, without events of their own: load them (spread
        // over a few seconds, since every player's page does it at once).
        if (rendered === "upcoming") setTimeout(() => location.reload(), Math.random() * 3_000);
        break;
      }
      case "hunt.ended":
        setHuntState("ended", "finished");
        closeGuessing("The hunt is over; guessing is closed.");
        toast("The hunt is over. Thank you for playing!");
        break;
      default:
        break;
    }
  }

  function puzzleTitle(slug) {
    if (page.puzzle === slug) return $("h1[data-puzzle]").firstChild?.textContent.trim() || slug;
    const link = $(`#puzzle-list li${attr("data-puzzle", slug)} .title a`);
    return link ? link.textContent : slug;
  }

  function hasPuzzle(slug) {
    return page.puzzle === slug || Boolean($(`#puzzle-list li${attr("data-puzzle", slug)}`));
  }

  function setHuntState(state, label) {
    body.dataset.huntState = state;
    const pill = $("#hunt-state");
    if (!pill) return;
    pill.textContent = label;
    pill.classList.toggle("ok", state === "running");
    pill.classList.toggle("warn", state === "upcoming");
  }

  // Puzzle list (hunt home) --------------------------------------------------------------------------

  function puzzleUrl(region, slug) {
    const template = region.dataset.puzzleUrl;
    const encoded = encodeURIComponent(slug);
    return template
      ? template.replace("__puzzle__", encoded)
      : `/hunts/${encodeURIComponent(hunt)}/puzzles/${encoded}/`;
  }

  function addPuzzle(puzzle) {
    const region = $("#puzzle-list");
    if (!region || $(`li${attr("data-puzzle", puzzle.slug)}`, region)) return;
    let round = $$("section[data-round]", region).find((s) => s.dataset.round === puzzle.round);
    if (!round) {
      round = el(
        "section",
        { "data-round": puzzle.round },
        el("h3", {}, puzzle.round, " ", el("span", { class: "small muted" })),
        el("ul", { class: "puzzle-list" })
      );
      region.append(round);
      $("#no-puzzles")?.remove();
    }
    const row = el(
      "li",
      { "data-puzzle": puzzle.slug, "data-solved": "false", "data-points": puzzle.points },
      el("span", { class: "pill" }, "Open"),
      " ",
      el("span", { class: "title" }, el("a", { href: puzzleUrl(region, puzzle.slug) }, puzzle.title)),
      " ",
      el("span", { class: "points" }, `${puzzle.points} pts`)
    );
    $("ul.puzzle-list", round).append(row);
    flash(row);
    countSolved();
  }

  function markSolved(slug, at, answer) {
    const row = $(`#puzzle-list li${attr("data-puzzle", slug)}`);
    if (row && row.dataset.solved !== "true") {
      row.dataset.solved = "true";
      row.classList.add("solved");
      const solved = el("span", { class: "pill ok", title: `Solved at ${hhmm(at)} UTC` }, "✓ Solved");
      const pill = $(":scope > .pill", row);
      if (pill) pill.replaceWith(solved);
      else row.prepend(solved);
      flash(row);
      countSolved();
    }
    if (page.puzzle !== slug) return;
    const solution = $("#solution");
    if (solution && solution.dataset.solved !== "true") {
      solution.dataset.solved = "true";
      solution.replaceChildren(
        el(
          "p",
          { class: "solved-banner", role: "status" },
          `✓ Solved at ${hhmm(at)} UTC. Answer: `,
          el("span", { class: "answer" }, answer ?? "")
        )
      );
      flash(solution);
    }
    closeGuessing("Your team solved this puzzle.");
  }

  function countSolved() {
    const region = $("#puzzle-list");
    if (!region) return;
    for (const round of $$("section[data-round]", region)) {
      const counter = $(":scope > h3 > .small", round);
      const rows = $$("li[data-puzzle]", round);
      if (counter) counter.textContent = `${rows.filter((r) => r.dataset.solved === "true").length}/${rows.length}`;
    }
    const total = $("#puzzles-heading > .small");
    if (total) total.textContent = `(${$$('li[data-puzzle][data-solved="true"]', region).length} solved)`;
  }

  // Guess log and form (puzzle page) -----------------------------------------------------------------

  function guessRow(guess) {
    const response = guess.response && guess.response !== "Correct!" ? guess.response : null;
    return el(
      "li",
      { "data-guess-id": guess.id, "data-status": guess.status },
      el("span", { class: "text" }, guess.answer),
      " ",
      el("span", { class: `pill status-${guess.status}` }, VERDICTS[guess.status] || guess.status),
      response && " ",
      response && el("span", { class: "response" }, response),
      " ",
      el(
        "span",
        { class: "meta" },
        `${guess.user || "someone"} · `,
        el("time", { datetime: guess.created_at }, hhmmss(guess.created_at))
      )
    );
  }

  function upsertGuess(guess) {
    if (!guess || guess.puzzle !== page.puzzle) return;
    const region = $("#guess-log");
    if (!region) return;
    let list = $("ol#guesses", region);
    if (!list) {
      list = el("ol", { class: "guess-log", reversed: true, id: "guesses" });
      const empty = $("#guesses", region);
      if (empty) empty.replaceWith(list);
      else region.append(list);
    }
    const row = guessRow(guess);
    const old = $(`li${attr("data-guess-id", guess.id)}`, list);
    if (old) {
      if (old.dataset.status === guess.status && guess.status !== "pending") return;
      old.replaceWith(row);
    } else {
      list.prepend(row);
      const count = $("#guesses-heading > .small");
      if (count) count.textContent = `(${list.children.length})`;
    }
    flash(row);
  }

  /** Replace the guess form (solved, or hunt over) with a sentence, as the page renders it then. */
  function closeGuessing(text) {
    const form = $("#guess-form");
    if (!form) return;
    // A guess in flight keeps waiting for its guess.accepted (its message), which may come after this.
    form.replaceWith(el("p", { class: "muted" }, text));
  }

  let pendingGuess = null; // {id, timer} of a guess.submit awaiting its answer
  let guessFormHooked = false;

  function enableSocketGuesses() {
    const form = $("#guess-form");
    if (!form || !page.puzzle || guessFormHooked) return;
    guessFormHooked = true;
    form.addEventListener("submit", (event) => {
      if (!ready || !ws || ws.readyState !== WebSocket.OPEN) return; // the normal POST
      event.preventDefault();
      if (pendingGuess) return;
      const input = form.elements.namedItem("answer");
      const clientId = form.elements.namedItem("client_id");
      const id = randomId();
      // The same id goes with the POST fallback: the server records the guess once either way.
      if (clientId) clientId.value = id;
      const answer = input ? input.value : "";
      if (!send({ type: "guess.submit", puzzle: page.puzzle, answer, id })) {
        form.submit();
        return;
      }
      setFormBusy(form, true);
      pendingGuess = { id, form, answer, timer: setTimeout(postPendingGuess, GUESS_TIMEOUT_MS) };
    });
  }

  function setFormBusy(form, busy) {
    for (const button of $$("button", form)) button.disabled = busy;
    form.setAttribute("aria-busy", String(busy));
  }

  function clearPendingGuess() {
    if (!pendingGuess) return null;
    const { form, timer } = pendingGuess;
    clearTimeout(timer);
    pendingGuess = null;
    setFormBusy(form, false);
    const clientId = form.elements.namedItem("client_id");
    if (clientId) clientId.value = randomId(); // the next guess is a new one
    return form;
  }

  /** No answer over the socket: post the form with the same client_id. */
  function postPendingGuess() {
    if (!pendingGuess) return;
    const { form, timer } = pendingGuess;
    clearTimeout(timer);
    pendingGuess = null;
    if (form.isConnected) form.submit();
  }

  function onGuessAccepted(frame) {
    if (!pendingGuess || frame.id !== pendingGuess.id) return;
    const { answer } = pendingGuess;
    const form = clearPendingGuess();
    const guess = frame.guess;
    const input = form.elements.namedItem("answer");
    if (input && input.value === answer) {
      // Cleared only if the player has not started typing the next guess meanwhile.
      input.value = "";
      input.removeAttribute("aria-invalid");
    }
    safely(() => upsertGuess(guess));
    const said = `“${guess.answer}”`;
    const response = guess.response && guess.response !== "Correct!" ? ` ${guess.response}` : "";
    if (!frame.created) showMessage("info", `Your team already guessed ${said}: ${guess.status}.${response}`);
    else if (guess.status === "correct") showMessage("success", `${said} is correct! Puzzle solved.${response}`);
    else if (guess.status === "partial") showMessage("warning", `${said} is on the right track.${response}`);
    else if (guess.status === "incorrect") showMessage("error", `${said} is incorrect.${response}`);
    else showMessage("info", `${said} is being checked; the verdict appears below.`);
  }

  function guessRefused(frame) {
    clearPendingGuess();
    let text = frame.message || "Your guess could not be sent.";
    if (frame.code === "rate_limited" && frame.retry_after != null && !text.includes(`${frame.retry_after} s`)) {
      text = `${text} Try again in ${frame.retry_after} s.`;
    }
    showMessage("error", text);
  }

  // Hints and questions (puzzle page) ---------------------------------------------------------------

  function showHint(data) {
    if (data.puzzle !== page.puzzle || !data.hint) return;
    const region = $("#hints");
    if (!region) return;
    let item = $(`li${attr("data-hint-id", data.hint.id)}`, region);
    if (item?.dataset.unlocked === "true") return;
    if (!item) {
      let list = $("ul.hint-list", region);
      if (!list) {
        $(":scope > p.muted", region)?.remove();
        list = el("ul", { class: "hint-list" });
        region.append(list);
      }
      item = el(
        "li",
        { id: `hint-${data.hint.id}`, "data-hint-id": data.hint.id },
        el("strong", {}, `Hint ${list.children.length + 1}`)
      );
      list.append(item);
    }
    const label = $(":scope > strong", item);
    item.replaceChildren(...(label ? [label] : []), el("div", {}, lines(data.hint.text)));
    item.dataset.unlocked = "true";
    flash(item);
  }

  function showAnswer(data) {
    if (data.puzzle !== page.puzzle || !data.request) return;
    const region = $("#hint-requests");
    if (!region) return;
    const id = data.request.id;
    let answer = $(`dd${attr("data-request-id", id)}`, region);
    if (!answer) {
      let list = $("dl.qa", region);
      if (!list) {
        list = el("dl", { class: "qa" });
        ($(":scope > h2", region) || region.firstChild).after(list);
      }
      answer = el("dd", { "data-request-id": id });
      list.append(el("dt", { "data-request-id": id }, lines(data.request.question)), answer);
    }
    answer.dataset.status = "answered";
    answer.replaceChildren(lines(data.request.answer));
    flash(answer);
  }

  /** An erratum, or the correction of one (the same id again: its text is replaced). */
  function addErratum(data, at) {
    const region = $("#errata");
    // The puzzle page lists its own puzzle's errata; a page without a puzzle lists every one it gets.
    if (!region || (page.puzzle && data.puzzle !== page.puzzle)) return;
    const list = $("ul, ol", region) || region.appendChild(el("ul", { class: "announcements" }));
    const item = el(
      "li",
      { "data-erratum-id": data.id },
      el("time", { datetime: at }, `${dayTime(at)} UTC`),
      " ",
      lines(data.text)
    );
    const old = $(`li${attr("data-erratum-id", data.id)}`, list);
    if (old) old.replaceWith(item);
    else list.append(item);
    region.hidden = false;
    flash(item);
  }

  // Treasures (hunt home card and treasure page) ------------------------------------------------------

  function treasureItem(slug) {
    return $(`#treasures.treasure-list li${attr("data-treasure", slug)}`);
  }

  function treasureFound(data) {
    const slug = data.treasure.slug;
    const card = $("#treasures:not(.treasure-list)");
    if (card && !$(`li${attr("data-treasure", slug)}`, card)) {
      let list = $("ul", card);
      if (!list) {
        list = el("ul", { class: "announcements" });
        const none = $(":scope > p.muted", card);
        if (none) none.replaceWith(list);
        else $(":scope > h2", card).after(list);
      }
      const row = el(
        "li",
        { "data-treasure": slug },
        el("strong", {}, data.treasure.name),
        " ",
        el("span", { class: "pill gold" }, `finder #${data.rank}`),
        data.points ? " " : null,
        data.points ? el("span", { class: "small" }, `+${data.points} pts`) : null
      );
      list.append(row);
      flash(row);
    }
    const item = treasureItem(slug);
    if (item && item.dataset.found !== "true") {
      item.dataset.found = "true";
      item.classList.add("found");
      const reveal = el(
        "div",
        { class: "reveal", "data-field": "reveal" },
        el(
          "p",
          {},
          el("span", { class: "pill gold" }, `Your team: finder #${data.rank}`),
          data.points ? ` +${data.points} points` : null
        ),
        data.treasure.reveal ? el("p", {}, lines(data.treasure.reveal)) : null
      );
      const remaining = $(":scope > [data-field='remaining']", item);
      if (remaining) remaining.after(reveal);
      else item.append(reveal);
      flash(item);
    }
  }

  function treasureClaimed(data, at) {
    const item = treasureItem(data.treasure.slug);
    if (!item) return;
    const remaining = $(":scope > [data-field='remaining']", item);
    const supply = intOrNull(item.dataset.supply);
    if (remaining && supply !== null && typeof data.remaining === "number") {
      if (data.remaining > 0) remaining.replaceChildren(`${data.remaining} of ${supply} left.`);
      else remaining.replaceChildren(el("strong", {}, `All ${supply} found.`));
    }
    let finders = $("[data-field='finders']", item);
    if (!finders) {
      finders = el("ol", { class: "small finders", "data-field": "finders" });
      const details = el(
        "details",
        { open: supply !== null },
        el("summary", { class: "small" }, "Finders"),
        finders
      );
      const nobody = $(":scope > [data-field='no-finders']", item);
      if (nobody) nobody.replaceWith(details);
      else item.append(details);
    }
    if ($(`li${attr("data-team", data.team.slug)}`, finders) || finders.children.length >= 10) return;
    const row = el(
      "li",
      { value: data.rank, "data-team": data.team.slug },
      data.team.name,
      " ",
      el("span", { class: "muted" }, hhmm(at))
    );
    finders.append(row);
    flash(row);
  }

  function treasureClue(data) {
    const item = treasureItem(data.treasure.slug);
    if (!item) return;
    let clue = $(":scope > [data-field='clue']", item);
    if (!clue) {
      clue = el("p", { class: "small", "data-field": "clue" });
      const remaining = $(":scope > [data-field='remaining']", item);
      if (remaining) remaining.before(clue);
      else item.append(clue);
    }
    clue.replaceChildren(el("strong", {}, "Clue:"), " ", lines(data.clue));
    flash(clue);
  }

  // Team panel, presence and score -----------------------------------------------------------------

  let online = new Set();

  function addMember(name) {
    const list = $("#team-members");
    if (!list || $(`[data-member]${attr("data-member", name)}`, list)) return;
    const item = el("li", { class: "pill", "data-member": name }, name);
    list.append(item);
    flash(item);
    renderPresence([...online]);
  }

  function removeMember(name) {
    $(`#team-members ${attr("data-member", name)}`)?.remove();
  }

  function renderPresence(names) {
    if (!Array.isArray(names)) return;
    online = new Set(names);
    for (const item of $$("#team-members [data-member]")) {
      const on = online.has(item.dataset.member);
      item.dataset.online = String(on);
      let label = $(".presence-label", item);
      if (!label) {
        label = el("span", { class: "visually-hidden presence-label" });
        item.append(label);
      }
      label.textContent = on ? " (online)" : "";
    }
  }

  function setRank(rank) {
    const field = $("#team-panel [data-field='rank']");
    if (field) field.textContent = rank ? `#${rank}` : "–";
  }

  function shownRank() {
    const text = $("#team-panel [data-field='rank']")?.textContent || "";
    return intOrNull(text.replace("#", ""));
  }

  let teamTimer = null;

  /** Score, rank, solves and members from the REST API (a few events in a row make one request). */
  function refreshTeam(retry = true) {
    if (!myTeam || !($("#team-panel") || $("#header-team"))) return;
    clearTimeout(teamTimer);
    teamTimer = setTimeout(
      async () => {
        let team = null;
        try {
          const response = await fetch(`/api/hunts/${encodeURIComponent(hunt)}/team/`, {
            credentials: "same-origin",
            headers: { Accept: "application/json" },
          });
          if (response.ok) team = await response.json();
        } catch {
          // Offline or cut off: tried once more below.
        }
        if (team) safely(() => renderTeam(team));
        else if (retry) refreshTeam(false);
      },
      retry ? 200 + Math.random() * 500 : 3_000
    );
  }

  function renderTeam(team) {
    for (const field of $$("#team-panel [data-field='score'], #header-team [data-field='score']")) {
      if (field.textContent !== String(team.score)) {
        field.textContent = String(team.score);
        flash(field);
      }
    }
    setRank(team.rank);
    const solves = $("#team-panel [data-field='solves']");
    if (solves) solves.textContent = String(team.solves);
    if (Array.isArray(team.members)) {
      const names = team.members.map((m) => m.username);
      for (const item of $$("#team-members [data-member]")) {
        if (!names.includes(item.dataset.member)) item.remove();
      }
      names.forEach(addMember);
    }
  }

  // Leaderboard -------------------------------------------------------------------------------------

  let boardTimer = null;

  function onLeaderboard(top) {
    if (!Array.isArray(top)) return;
    if ($("#leaderboard")) {
      // The page shows a whole page of the board: fetch it (spread out, so viewers do not all ask at once).
      clearTimeout(boardTimer);
      boardTimer = setTimeout(refreshBoard, Math.random() * 1_500);
    }
    if (!myTeam) return;
    const mine = top.find((row) => row.team?.slug === myTeam.slug);
    if (mine) setRank(mine.rank);
    else if ((shownRank() ?? Infinity) <= top.length) refreshTeam(); // it just left the top
  }

  async function refreshBoard() {
    const number = intOrNull(new URLSearchParams(location.search).get("page")) || 1;
    try {
      const response = await fetch(`/api/hunts/${encodeURIComponent(hunt)}/leaderboard/?page=${number}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) safely(renderBoard.bind(null, (await response.json()).results || []));
    } catch {
      // Offline: the next update fetches again.
    }
  }

  function boardCells(row, mine) {
    return [
      el("td", { class: "num" }, row.rank),
      el("td", {}, row.team.name, mine ? " " : null, mine ? el("span", { class: "small" }, "(you)") : null),
      el("td", { class: "num", "data-field": "score" }, row.score),
      el("td", { class: "num", "data-field": "solves" }, row.solves),
      el(
        "td",
        {},
        row.last_scored_at
          ? el("time", { datetime: row.last_scored_at }, dayTime(row.last_scored_at))
          : el("span", { class: "muted" }, "–")
      ),
    ];
  }

  function renderBoard(rows) {
    let table = $("#leaderboard");
    if (!table || !rows.length) return;
    if (!table.matches("table")) {
      const head = el(
        "tr",
        {},
        ...["Rank", "Team", "Score", "Solves", "Last solve"].map((name, i) =>
          el("th", { scope: "col", class: i === 1 || i === 4 ? null : "num" }, name)
        )
      );
      const fresh = el(
        "table",
        { id: "leaderboard", "data-region": "leaderboard" },
        el("thead", {}, head),
        el("tbody")
      );
      table.replaceWith(el("div", { class: "table-wrap" }, fresh));
      table = fresh;
    }
    const tbody = $("tbody", table);
    const existing = new Map($$("tr[data-team]", tbody).map((tr) => [tr.dataset.team, tr]));
    for (const row of rows) {
      const mine = row.team.slug === myTeam?.slug;
      let tr = existing.get(row.team.slug);
      if (!tr) {
        tr = el("tr", { "data-team": row.team.slug }, ...boardCells(row, mine));
        flash(tr);
      } else {
        existing.delete(row.team.slug);
        const cells = tr.children;
        const score = $("[data-field='score']", tr);
        if (score && score.textContent !== String(row.score)) {
          // Rank, score, solves and the time of the last score change: the name cell stays.
          const fresh = boardCells(row, mine);
          for (const i of [0, 2, 3, 4]) if (cells[i]) cells[i].replaceWith(fresh[i]);
          flash(tr);
        } else if (cells[0]) {
          cells[0].textContent = String(row.rank);
        }
      }
      if (mine) {
        tr.classList.add("mine");
        tr.setAttribute("aria-current", "true");
      }
      tbody.append(tr); // in the board's order
    }
    for (const tr of existing.values()) tr.remove();
  }

  // Announcements -----------------------------------------------------------------------------------

  function addAnnouncement(data, at) {
    const region = $("#announcements");
    if (!region) return;
    let list = region.matches("ul") ? region : $("ul.announcements", region);
    if (!list) {
      list = el("ul", { class: "announcements" });
      const none = $(":scope > p.muted", region);
      if (none) none.replaceWith(list);
      else region.append(list);
    }
    if ($(attr("data-announcement-id", data.id), list)) return;
    const item = el(
      "li",
      { "data-announcement-id": data.id },
      el("time", { datetime: at }, `${dayTime(at)} UTC`),
      lines(data.text)
    );
    list.prepend(item);
    flash(item);
  }

  // Staff live view ---------------------------------------------------------------------------------

  function applyStaff(frame) {
    const data = frame.data || {};
    if ((frame.type === "guess.pending" || frame.type === "guess.judged") && data.guess) {
      upsertStaffGuess(data.guess, frame.team);
    } else if (frame.type === "hint.requested" && data.request) {
      toast(`New question from ${frame.team?.name ?? "a team"} on ${data.puzzle}: reload the page to answer it.`, "gold");
    } else if (frame.type === "hint.answered" && data.request) {
      $(`#hint-queue ${attr("data-request-id", data.request.id)}`)?.remove();
    }
  }

  function upsertStaffGuess(guess, team) {
    const region = $("#latest-guesses");
    if (!region) return;
    let tbody = $("tbody", region);
    if (!tbody) {
      const head = el(
        "tr",
        {},
        ...["Time", "Team", "Puzzle", "Player", "Guess", "Verdict"].map((n) => el("th", { scope: "col" }, n))
      );
      tbody = el("tbody");
      const table = el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), tbody));
      const none = $(":scope > p.muted", region);
      if (none) none.replaceWith(table);
      else region.append(table);
    }
    const response = guess.response && guess.response !== "Correct!" ? guess.response : null;
    const row = el(
      "tr",
      { "data-guess-id": guess.id, "data-status": guess.status },
      el("td", {}, el("time", { datetime: guess.created_at }, hhmmss(guess.created_at))),
      el("td", {}, team?.name ?? ""),
      el("td", {}, guess.puzzle),
      el("td", {}, guess.user || "–"),
      el("td", { class: "mono" }, guess.answer),
      el(
        "td",
        {},
        el("span", { class: `pill status-${guess.status}` }, VERDICTS[guess.status] || guess.status),
        response ? " " : null,
        response ? el("span", { class: "small" }, response) : null
      )
    );
    const old = $(`tr${attr("data-guess-id", guess.id)}`, tbody);
    if (old) old.replaceWith(row);
    else tbody.prepend(row);
    while (tbody.children.length > 100) tbody.lastElementChild.remove();
    flash(row);
  }

  // --- Start ---------------------------------------------------------------------------------------

  connect();
})();
