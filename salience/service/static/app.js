// The salience page: upload images, see where people will look, draw regions, compare designs.
// Plain browser JavaScript, no libraries. The server predicts; the page redraws the heatmap and
// overlay itself from the display map (8-bit gray) and a colormap table, so the opacity slider
// and the colour choice answer at once without another request.
"use strict";

(() => {
  const $ = (selector) => document.querySelector(selector);
  const el = {
    status: $("#server-status"),
    drop: $("#drop"),
    fileInput: $("#file-input"),
    progress: $("#progress"),
    progressText: $("#progress-text"),
    error: $("#error"),
    images: $("#images"),
    views: $("#views"),
    opacity: $("#opacity"),
    opacityValue: $("#opacity-value"),
    colormap: $("#colormap"),
    windows: $("#windows"),
    condition: $("#condition"),
    conditionLabel: $("#condition-label"),
    windowChoice: $("#window-choice"),
    placeholder: $("#placeholder"),
    wrap: $("#canvas-wrap"),
    canvas: $("#view"),
    layer: $("#regions-layer"),
    caption: $("#view-caption"),
    fixations: $("#fixations"),
    k: $("#k"),
    regionsBody: $("#regions-table tbody"),
    regionsEmpty: $("#regions-empty"),
    regionsStatus: $("#regions-status"),
    compareA: $("#compare-a"),
    compareB: $("#compare-b"),
    compareRun: $("#compare-run"),
    compareResult: $("#compare-result"),
    compareBody: $("#compare-table tbody"),
  };
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#ffd400", "#00e5ff", "#ff4fd8", "#7dff4f", "#ff8a00", "#b48cff", "#ffffff"];

  const state = {
    config: null, // GET /healthz
    tables: {}, // colormap name -> [[r, g, b] x 256]
    items: [], // one per uploaded file
    current: null, // the item shown
    view: "overlay",
    window: -1, // -1: the whole viewing time; else an index into result.windows
    regions: [], // {id, name, x, y, w, h} in fractions of width and height
    nextRegion: 1,
    aoiSeq: 0,
    aoiTimer: null,
    aoiStatus: "",
    comparison: null,
    busy: 0,
  };

  // ------------------------------------------------------------------ talking to the server

  async function api(path, form) {
    let response;
    try {
      response = await fetch(path, { method: form ? "POST" : "GET", body: form });
    } catch (err) {
      throw new Error(`Could not reach the server (${err.message}). Is salience serve still running?`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const message = body && body.message ? body.message : response.statusText || "request failed";
      const error = new Error(`${message} (HTTP ${response.status})`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = false;
  }

  function clearError() {
    el.error.hidden = true;
    el.error.textContent = "";
  }

  function startBusy(text) {
    state.busy += 1;
    el.progress.hidden = false;
    el.progressText.textContent = text;
    document.body.setAttribute("aria-busy", "true");
    const started = performance.now();
    const timer = setInterval(() => {
      el.progressText.textContent = `${text} ${((performance.now() - started) / 1000).toFixed(1)} s`;
    }, 100);
    return () => {
      clearInterval(timer);
      state.busy -= 1;
      if (state.busy === 0) {
        el.progress.hidden = true;
        document.body.removeAttribute("aria-busy");
      }
    };
  }

  // ------------------------------------------------------------------ images and predictions

  function stem(name) {
    const dot = name.lastIndexOf(".");
    return (dot > 0 ? name.slice(0, dot) : name).replace(/[^\w.-]+/g, "_") || "image";
  }

  function loadImage(src) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("the browser cannot show this image"));
      img.src = src;
    });
  }

  const pngSrc = (b64) => `data:image/png;base64,${b64}`;

  async function pixelsOf(source, width, height) {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(source, 0, 0, width, height);
    return ctx.getImageData(0, 0, width, height);
  }

  async function grayValues(b64, width, height) {
    const rgba = (await pixelsOf(await loadImage(pngSrc(b64)), width, height)).data;
    const values = new Uint8Array(width * height);
    for (let i = 0; i < values.length; i += 1) values[i] = rgba[4 * i];
    return values;
  }

  function addFiles(files) {
    clearError();
    const limit = state.config ? state.config.max_upload_mb * 1e6 : Infinity;
    const added = [];
    for (const file of files) {
      const item = {
        id: `img${state.items.length + 1}`,
        file,
        name: file.name || "image",
        status: "waiting",
        error: "",
        result: null,
        photo: null, // ImageData of the picture as the server read it, if the browser can decode it
        values: {}, // window index (-1 whole) -> Uint8Array display values
        gaze: null,
        aoi: null,
        thumb: URL.createObjectURL(file),
      };
      if (file.size > limit) {
        item.status = "failed";
        item.error = `${item.name}: ${(file.size / 1e6).toFixed(1)} MB is larger than the ${state.config.max_upload_mb} MB this server accepts`;
      }
      state.items.push(item);
      added.push(item);
    }
    renderThumbs();
    renderCompareChoices();
    const failed = added.filter((item) => item.status === "failed");
    if (failed.length) showError(failed.map((item) => item.error).join("\n"));
    predictQueue(added.filter((item) => item.status === "waiting"));
  }

  async function predictQueue(items) {
    for (let i = 0; i < items.length; i += 1) {
      const item = items[i];
      const label = items.length > 1 ? ` (${i + 1} of ${items.length})` : "";
      await predict(item, `Predicting ${item.name}${label}…`);
      // show the first image that succeeds; a failure only while nothing else is shown
      const shown = state.current;
      if (shown === null || (shown.status === "failed" && item.status === "done")) select(item);
    }
  }

  // whether the images are predicted as another kind than the server's default (no windows)
  function otherKind() {
    const kinds = (state.config && state.config.conditions) || [];
    return kinds.length > 0 && el.condition.value !== kinds[0];
  }

  async function predict(item, text) {
    item.status = "predicting";
    renderThumbs();
    const done = startBusy(text || `Predicting ${item.name}…`);
    const form = new FormData();
    form.append("image", item.file, item.name);
    form.append("colormap", el.colormap.value || "jet");
    form.append("opacity", el.opacity.value);
    form.append("windows", el.windows.checked && state.config && state.config.windows && !otherKind() ? "true" : "false");
    if (el.condition.value) form.append("condition", el.condition.value);
    try {
      const result = await api("/v1/predict", form);
      item.values = {};
      item.values[-1] = await grayValues(result.display_png, result.width, result.height);
      for (let w = 0; w < result.windows.length; w += 1) {
        item.values[w] = await grayValues(result.windows[w].display_png, result.width, result.height);
      }
      item.gaze = await loadImage(pngSrc(result.gaze_plot_png));
      item.photo = null;
      try {
        const picture = await loadImage(item.thumb);
        if (picture.naturalWidth === result.width && picture.naturalHeight === result.height) {
          item.photo = await pixelsOf(picture, result.width, result.height);
        }
      } catch (err) {
        item.photo = null; // shown from the server's pictures instead (e.g. TIFF)
      }
      item.result = result;
      item.status = "done";
      item.error = "";
    } catch (err) {
      item.status = "failed";
      item.error = err.message.includes(item.name) ? err.message : `${item.name}: ${err.message}`;
      showError(item.error);
    } finally {
      done();
      renderThumbs();
      renderCompareChoices();
      if (item === state.current) renderCurrent();
    }
  }

  function select(item) {
    state.current = item;
    if (item.result && state.window >= item.result.windows.length) state.window = -1;
    renderThumbs();
    renderCurrent();
    scheduleAoi(0);
    if (wantsWindows(item)) predict(item, `Predicting ${item.name} over time…`);
  }

  function wantsWindows(item) {
    // "Over time" is on but this image was predicted without the windows
    return (
      el.windows.checked && item.status === "done" && item.result.windows.length === 0 && state.config.windows
    );
  }

  // ------------------------------------------------------------------ drawing the maps

  function maps(item, windowIndex) {
    // heatmap and overlay ImageData for the current colours and opacity
    const { width, height } = item.result;
    const values = item.values[windowIndex];
    const table = state.tables[el.colormap.value];
    const opacity = Number(el.opacity.value);
    const heat = new ImageData(width, height);
    const over = new ImageData(width, height);
    const photo = item.photo.data;
    for (let i = 0, p = 0; i < values.length; i += 1, p += 4) {
      const v = values[i];
      const [r, g, b] = table[v];
      const a = (opacity * v) / 255;
      heat.data[p] = r;
      heat.data[p + 1] = g;
      heat.data[p + 2] = b;
      heat.data[p + 3] = 255;
      over.data[p] = Math.round(photo[p] * (1 - a) + r * a);
      over.data[p + 1] = Math.round(photo[p + 1] * (1 - a) + g * a);
      over.data[p + 2] = Math.round(photo[p + 2] * (1 - a) + b * a);
      over.data[p + 3] = 255;
    }
    return { heatmap: heat, overlay: over };
  }

  function serverPicture(item, kind) {
    // the server's PNG of kind overlay|heatmap for the chosen window (browser cannot decode the file)
    const source = state.window >= 0 ? item.result.windows[state.window] : item.result;
    return pngSrc(source[`${kind}_png`]);
  }

  async function renderCurrent() {
    const item = state.current;
    el.canvas.dataset.ready = "false";
    renderWindowChoice();
    renderFixations();
    if (!item || item.status !== "done") {
      el.wrap.hidden = true;
      el.placeholder.hidden = false;
      el.placeholder.textContent = !item
        ? "Add an image to see where people will look."
        : item.status === "failed"
          ? `Could not predict: ${item.error}`
          : `Predicting ${item.name}…`;
      el.caption.textContent = "";
      renderDownloads();
      renderRegions();
      return;
    }
    const { width, height } = item.result;
    el.placeholder.hidden = true;
    el.wrap.hidden = false;
    el.canvas.width = width;
    el.canvas.height = height;
    el.layer.setAttribute("viewBox", `0 0 ${width} ${height}`);
    el.layer.setAttribute("preserveAspectRatio", "none");
    const ctx = el.canvas.getContext("2d", { willReadFrequently: true });
    const view = state.view;
    if (view === "gaze") {
      ctx.drawImage(item.gaze, 0, 0);
    } else if (view === "image") {
      if (item.photo) ctx.putImageData(item.photo, 0, 0);
      else ctx.drawImage(await loadImage(item.thumb), 0, 0, width, height);
    } else if (item.photo && state.tables[el.colormap.value]) {
      ctx.putImageData(maps(item, state.window)[view], 0, 0);
    } else {
      ctx.drawImage(await loadImage(serverPicture(item, view)), 0, 0);
    }
    el.canvas.dataset.view = view;
    el.canvas.dataset.ready = "true";
    const when = state.window >= 0 ? `during ${item.result.windows[state.window].label}` : "first seconds";
    el.caption.textContent = {
      overlay: `${item.name}, ${width}×${height}: where people look (${when}); stronger colour = more attention.`,
      heatmap: `${item.name}: the brightest tenth of the scale holds the places that draw a tenth of all fixations (${when}).`,
      gaze: `${item.name}: likely first fixations, numbered in order.`,
      image: `${item.name}, as uploaded.`,
    }[view];
    renderRegions();
    renderDownloads();
  }

  function renderFixations() {
    const item = state.current;
    el.fixations.replaceChildren();
    if (!item || item.status !== "done") return;
    const title = document.createElement("li");
    title.textContent = "Likely first fixations (x, y; chance one lands within 1°):";
    el.fixations.append(title);
    for (const f of item.result.fixations.slice(0, 5)) {
      const li = document.createElement("li");
      const order = document.createElement("b");
      order.textContent = `${f.order}.`;
      li.append(order, ` (${Math.round(f.x)}, ${Math.round(f.y)}) ${(100 * f.probability).toFixed(0)} %`);
      el.fixations.append(li);
    }
  }

  function renderWindowChoice() {
    const item = state.current;
    const windows = item && item.result ? item.result.windows : [];
    const show = el.windows.checked && windows.length > 0 && state.view !== "gaze";
    el.windowChoice.hidden = !show;
    el.windowChoice.replaceChildren();
    if (!show) return;
    const choices = [{ index: -1, label: "All (first seconds)" }].concat(
      windows.map((w, index) => ({ index, label: w.label.replace("s", " s") })),
    );
    for (const choice of choices) {
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("role", "radio");
      button.dataset.window = String(choice.index);
      button.setAttribute("aria-checked", String(choice.index === state.window));
      button.textContent = choice.label;
      button.addEventListener("click", () => {
        state.window = choice.index;
        renderCurrent();
      });
      el.windowChoice.append(button);
    }
  }

  function renderThumbs() {
    el.images.replaceChildren();
    for (const item of state.items) {
      const li = document.createElement("li");
      li.dataset.id = item.id;
      li.setAttribute("aria-current", String(item === state.current));
      li.tabIndex = 0;
      const img = document.createElement("img");
      img.src = item.thumb;
      img.alt = "";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = item.name;
      name.title = item.name;
      const status = document.createElement("span");
      status.className = `status ${item.status}`;
      status.textContent = { waiting: "waiting", predicting: "predicting…", done: "", failed: "failed" }[item.status];
      if (item.error) status.title = item.error;
      li.append(img, name, status);
      li.addEventListener("click", () => select(item));
      li.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") select(item);
      });
      el.images.append(li);
    }
  }

  // ------------------------------------------------------------------ regions of interest

  function regionsJson() {
    return JSON.stringify({
      units: "fraction",
      regions: state.regions.map((r) => ({ name: r.name, rect: [r.x, r.y, r.w, r.h] })),
    });
  }

  function scheduleAoi(delay = 250) {
    clearTimeout(state.aoiTimer);
    state.aoiTimer = setTimeout(runAoi, delay);
  }

  async function runAoi() {
    const item = state.current;
    const seq = (state.aoiSeq += 1);
    if (!item || item.status !== "done" || state.regions.length === 0) {
      state.aoiStatus = "";
      renderRegions();
      return;
    }
    const names = state.regions.map((r) => r.name.trim());
    if (names.some((n) => !n) || new Set(names).size !== names.length) {
      state.aoiStatus = "Each region needs its own name.";
      renderRegions();
      return;
    }
    const signature = regionsJson() + el.k.value;
    state.aoiStatus = "Updating…";
    renderRegions();
    const form = new FormData();
    form.append("image", item.file, item.name);
    form.append("regions", regionsJson());
    form.append("k", el.k.value);
    if (el.condition.value) form.append("condition", el.condition.value);
    try {
      const report = await api("/v1/aoi", form);
      if (seq !== state.aoiSeq) return;
      item.aoi = { report, signature };
      state.aoiStatus = `From ${report.n} sampled scanpaths (seed ${report.seed}).`;
    } catch (err) {
      if (seq !== state.aoiSeq) return;
      item.aoi = null;
      state.aoiStatus = "";
      showError(`Regions: ${err.message}`);
    }
    renderRegions();
    renderDownloads();
  }

  function aoiRows() {
    // the current image's region numbers by name, if they are for the regions as they are now
    const item = state.current;
    if (!item || !item.aoi || item.aoi.signature !== regionsJson() + el.k.value) return null;
    return new Map(item.aoi.report.regions.map((row) => [row.region, row]));
  }

  const percent = (v) => `${(100 * v).toFixed(1)} %`;

  function renderRegions() {
    const rows = aoiRows();
    for (const span of document.querySelectorAll(".k-value")) span.textContent = el.k.value;
    el.regionsEmpty.hidden = state.regions.length > 0;
    el.regionsStatus.textContent = state.aoiStatus;
    // keep the row being edited (and its focus) when the numbers change
    const existing = new Map([...el.regionsBody.children].map((tr) => [tr.dataset.id, tr]));
    for (const [id, tr] of existing) {
      if (!state.regions.some((r) => String(r.id) === id)) tr.remove();
    }
    state.regions.forEach((region, index) => {
      let tr = existing.get(String(region.id));
      if (!tr) {
        tr = regionRow(region);
        el.regionsBody.append(tr);
      }
      const row = rows ? rows.get(region.name) : null;
      tr.classList.toggle("updating", !row);
      tr.querySelector(".swatch").style.background = PALETTE[index % PALETTE.length];
      tr.querySelector(".share").textContent = row ? percent(row.share) : "…";
      tr.querySelector(".lift").textContent = row ? row.lift.toFixed(2) : "…";
      tr.querySelector(".pk").textContent = row ? percent(row.p_first_k) : "…";
      tr.querySelector(".interval").textContent = row
        ? `${percent(row.p_first_k_low)} – ${percent(row.p_first_k_high)}`
        : "";
    });
    drawRegionLayer(rows);
  }

  function regionRow(region) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(region.id);
    const nameCell = document.createElement("td");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    const input = document.createElement("input");
    input.value = region.name;
    input.setAttribute("aria-label", "Region name");
    input.addEventListener("input", () => {
      const name = input.value.trim();
      const taken = state.regions.some((r) => r !== region && r.name === name);
      input.classList.toggle("invalid", !name || taken);
      input.title = !name ? "A region needs a name" : taken ? "Another region has this name" : "";
      if (name && !taken) {
        region.name = name;
        drawRegionLayer(aoiRows());
        scheduleAoi();
      }
    });
    nameCell.append(swatch, input);
    const share = document.createElement("td");
    share.className = "share";
    const lift = document.createElement("td");
    lift.className = "lift";
    const pk = document.createElement("td");
    const pkValue = document.createElement("span");
    pkValue.className = "pk";
    const interval = document.createElement("span");
    interval.className = "interval";
    interval.title = "95 % interval (sampling error)";
    pk.append(pkValue, interval);
    const removeCell = document.createElement("td");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "×";
    remove.setAttribute("aria-label", `Remove region ${region.name}`);
    remove.addEventListener("click", () => {
      state.regions = state.regions.filter((r) => r !== region);
      renderRegions();
      scheduleAoi(0);
    });
    removeCell.append(remove);
    tr.append(nameCell, share, lift, pk, removeCell);
    return tr;
  }

  function drawRegionLayer(rows) {
    const item = state.current;
    el.layer.replaceChildren();
    if (!item || item.status !== "done") return;
    const { width, height } = item.result;
    const size = Math.max(12, Math.round(Math.max(width, height) / 40));
    state.regions.forEach((region, index) => {
      const colour = PALETTE[index % PALETTE.length];
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", region.x * width);
      rect.setAttribute("y", region.y * height);
      rect.setAttribute("width", region.w * width);
      rect.setAttribute("height", region.h * height);
      rect.setAttribute("stroke", colour);
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", region.x * width + 4);
      text.setAttribute("y", region.y * height + size + 2);
      text.setAttribute("font-size", size);
      const row = rows ? rows.get(region.name) : null;
      text.textContent = row ? `${region.name} ${(100 * row.share).toFixed(0)} %` : region.name;
      el.layer.append(rect, text);
    });
  }

  function layerPoint(event) {
    const box = el.layer.getBoundingClientRect();
    const x = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
    const y = Math.min(Math.max((event.clientY - box.top) / box.height, 0), 1);
    return { x, y };
  }

  function setupDrawing() {
    let start = null;
    let ghost = null;
    el.layer.addEventListener("pointerdown", (event) => {
      if (!state.current || state.current.status !== "done" || event.button !== 0) return;
      start = layerPoint(event);
      el.layer.setPointerCapture(event.pointerId);
      ghost = document.createElementNS(SVG, "rect");
      ghost.setAttribute("class", "drawing");
      el.layer.append(ghost);
      event.preventDefault();
    });
    el.layer.addEventListener("pointermove", (event) => {
      if (!start) return;
      const p = layerPoint(event);
      const { width, height } = state.current.result;
      ghost.setAttribute("x", Math.min(start.x, p.x) * width);
      ghost.setAttribute("y", Math.min(start.y, p.y) * height);
      ghost.setAttribute("width", Math.abs(p.x - start.x) * width);
      ghost.setAttribute("height", Math.abs(p.y - start.y) * height);
    });
    el.layer.addEventListener("pointerup", (event) => {
      if (!start) return;
      const p = layerPoint(event);
      const { width, height } = state.current.result;
      const region = {
        x: Math.min(start.x, p.x),
        y: Math.min(start.y, p.y),
        w: Math.abs(p.x - start.x),
        h: Math.abs(p.y - start.y),
      };
      start = null;
      ghost.remove();
      if (region.w * width < 3 || region.h * height < 3) return; // a click, not a rectangle
      let name;
      do {
        name = `region ${state.nextRegion}`;
        state.nextRegion += 1;
      } while (state.regions.some((r) => r.name === name));
      state.regions.push({ id: state.nextRegion, name, ...region });
      renderRegions();
      scheduleAoi(0);
    });
  }

  // ------------------------------------------------------------------ comparison

  function renderCompareChoices() {
    const done = state.items.filter((item) => item.status === "done");
    for (const [select, fallback] of [
      [el.compareA, 0],
      [el.compareB, 1],
    ]) {
      const chosen = select.value;
      select.replaceChildren();
      for (const item of done) {
        const option = document.createElement("option");
        option.value = item.id;
        option.textContent = item.name;
        select.append(option);
      }
      // until a person picks, A and B are the first two images
      if (select.dataset.picked && done.some((item) => item.id === chosen)) select.value = chosen;
      else if (done[fallback]) select.value = done[fallback].id;
    }
    el.compareRun.disabled = done.length < 2;
  }

  async function runCompare() {
    clearError();
    const a = state.items.find((item) => item.id === el.compareA.value);
    const b = state.items.find((item) => item.id === el.compareB.value);
    if (!a || !b) {
      showError("Add two images to compare (both must have been predicted).");
      return;
    }
    const form = new FormData();
    form.append("a", a.file, a.name);
    form.append("b", b.file, b.name);
    if (state.regions.length) form.append("regions", regionsJson());
    form.append("k", el.k.value);
    form.append("colormap", el.colormap.value || "jet");
    form.append("opacity", el.opacity.value);
    if (el.condition.value) form.append("condition", el.condition.value);
    const done = startBusy(`Comparing ${a.name} and ${b.name}…`);
    el.compareRun.disabled = true;
    try {
      const result = await api("/v1/compare", form);
      state.comparison = { result, a, b };
      renderComparison();
    } catch (err) {
      showError(`Comparison: ${err.message}`);
    } finally {
      done();
      el.compareRun.disabled = false;
    }
  }

  function signed(v) {
    const text = `${v >= 0 ? "+" : "−"}${Math.abs(100 * v).toFixed(1)}`;
    const span = document.createElement("span");
    span.textContent = text;
    span.className = v > 0 ? "up" : v < 0 ? "down" : "";
    return span;
  }

  function renderComparison() {
    const { result, a, b } = state.comparison;
    $("#compare-img-a").src = pngSrc(result.a_overlay_png);
    $("#compare-img-b").src = pngSrc(result.b_overlay_png);
    $("#compare-img-diff").src = pngSrc(result.difference_png);
    $("#compare-cap-a").textContent = `A: ${a.name}`;
    $("#compare-cap-b").textContent = `B: ${b.name}`;
    el.compareBody.replaceChildren();
    for (const d of result.regions) {
      const tr = document.createElement("tr");
      const cells = [
        d.region,
        percent(d.share_a),
        percent(d.share_b),
        signed(d.share_delta),
        percent(d.p_first_k_a),
        percent(d.p_first_k_b),
        signed(d.p_first_k_delta),
      ];
      for (const cell of cells) {
        const td = document.createElement("td");
        td.append(cell);
        tr.append(td);
      }
      el.compareBody.append(tr);
    }
    el.compareResult.hidden = false;
  }

  // ------------------------------------------------------------------ downloads

  function save(blob, name) {
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  const jsonBlob = (data) => new Blob([`${JSON.stringify(data, null, 1)}\n`], { type: "application/json" });

  async function pngBlob(b64) {
    return (await fetch(pngSrc(b64))).blob();
  }

  function canvasBlob(imageData) {
    const canvas = document.createElement("canvas");
    canvas.width = imageData.width;
    canvas.height = imageData.height;
    canvas.getContext("2d").putImageData(imageData, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }

  function withoutPictures(result) {
    const keep = {};
    for (const [key, value] of Object.entries(result)) {
      if (!key.endsWith("_png") && !key.endsWith("_npy") && key !== "windows") keep[key] = value;
    }
    keep.windows = result.windows.map((w) => ({ label: w.label, start: w.start, end: w.end }));
    return keep;
  }

  async function download(kind) {
    const item = state.current;
    const comparison = state.comparison;
    const suffix = item && state.window >= 0 ? `_window_${item.result.windows[state.window].label}` : "";
    const name = item ? stem(item.name) : "image";
    if (kind === "overlay" || kind === "heatmap") {
      const source = state.window >= 0 ? item.result.windows[state.window] : item.result;
      const blob =
        item.photo && state.tables[el.colormap.value]
          ? await canvasBlob(maps(item, state.window)[kind])
          : await pngBlob(source[`${kind}_png`]);
      save(blob, `${name}${suffix}_${kind}.png`);
    } else if (kind === "gaze") {
      save(await pngBlob(item.result.gaze_plot_png), `${name}_gaze_plot.png`);
    } else if (kind === "fixations") {
      save(jsonBlob(withoutPictures(item.result)), `${name}_fixations.json`);
    } else if (kind === "aoi-csv") {
      save(new Blob([item.aoi.report.csv], { type: "text/csv" }), `${name}_aoi.csv`);
    } else if (kind === "aoi-json") {
      const { csv, ...report } = item.aoi.report;
      save(jsonBlob({ ...report, regions_input: JSON.parse(regionsJson()) }), `${name}_aoi.json`);
    } else if (kind === "compare-diff") {
      save(await pngBlob(comparison.result.difference_png), "compare_difference.png");
    } else if (kind === "compare-json") {
      const { csv, difference_png, a_overlay_png, b_overlay_png, ...rest } = comparison.result;
      delete rest.a.csv;
      delete rest.b.csv;
      save(jsonBlob(rest), "compare.json");
    } else if (kind === "compare-csv") {
      save(new Blob([comparison.result.csv], { type: "text/csv" }), "compare.csv");
    }
  }

  function renderDownloads() {
    const item = state.current;
    const ready = Boolean(item && item.status === "done");
    for (const button of document.querySelectorAll("#downloads button")) {
      const kind = button.dataset.download;
      button.disabled = !ready || (kind.startsWith("aoi") && !aoiRows());
    }
  }

  // ------------------------------------------------------------------ wiring

  function setupControls() {
    el.drop.addEventListener("click", () => el.fileInput.click());
    el.drop.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        el.fileInput.click();
      }
    });
    el.fileInput.addEventListener("change", () => {
      if (el.fileInput.files.length) addFiles([...el.fileInput.files]);
      el.fileInput.value = "";
    });
    for (const type of ["dragenter", "dragover"]) {
      el.drop.addEventListener(type, (event) => {
        event.preventDefault();
        el.drop.classList.add("over");
      });
    }
    for (const type of ["dragleave", "drop"]) {
      el.drop.addEventListener(type, () => el.drop.classList.remove("over"));
    }
    el.drop.addEventListener("drop", (event) => {
      event.preventDefault();
      const files = [...event.dataTransfer.files];
      if (files.length) addFiles(files);
    });
    // a file dropped beside the target should not replace the page
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());

    el.views.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-view]");
      if (!button) return;
      state.view = button.dataset.view;
      for (const b of el.views.querySelectorAll("button")) b.setAttribute("aria-checked", String(b === button));
      renderCurrent();
    });

    let refetch = null;
    const redraw = () => {
      el.opacityValue.textContent = Number(el.opacity.value).toFixed(2);
      const item = state.current;
      if (item && item.status === "done" && !item.photo) {
        // the browser cannot decode this file: ask the server for pictures with the new settings
        clearTimeout(refetch);
        refetch = setTimeout(() => predict(item), 300);
      } else {
        renderCurrent();
      }
    };
    el.opacity.addEventListener("input", redraw);
    el.colormap.addEventListener("change", redraw);
    el.condition.addEventListener("change", () => {
      // another kind of data is another model: predict the images again
      for (const item of state.items) {
        if (item.status === "done") predict(item, `Predicting ${item.name} as ${el.condition.selectedOptions[0].textContent}…`);
      }
    });
    el.windows.addEventListener("change", () => {
      const item = state.current;
      if (item && wantsWindows(item)) {
        predict(item, `Predicting ${item.name} over time…`);
      } else {
        state.window = -1;
        renderCurrent();
      }
    });
    el.k.addEventListener("change", () => {
      const k = Math.round(Number(el.k.value));
      el.k.value = String(Math.min(20, Math.max(1, Number.isFinite(k) ? k : 3)));
      renderRegions();
      scheduleAoi(0);
    });
    for (const select of [el.compareA, el.compareB]) {
      select.addEventListener("change", () => {
        select.dataset.picked = "true";
      });
    }
    el.compareRun.addEventListener("click", runCompare);
    for (const button of document.querySelectorAll("[data-download]")) {
      button.addEventListener("click", () =>
        download(button.dataset.download).catch((err) => showError(`Download: ${err.message}`)),
      );
    }
    setupDrawing();
  }

  async function start() {
    setupControls();
    renderCompareChoices();
    renderDownloads();
    try {
      const [config, colormaps] = await Promise.all([api("/healthz"), api("/v1/colormaps")]);
      state.config = config;
      state.tables = colormaps.tables;
      for (const name of Object.keys(colormaps.tables)) {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name;
        el.colormap.append(option);
      }
      el.colormap.value = colormaps.default;
      el.windows.disabled = !config.windows;
      const kinds = { eye: "photo", ui: "web page or app", mouse: "photo (mouse tracking)" };
      for (const kind of config.conditions || []) {
        const option = document.createElement("option");
        option.value = kind;
        option.textContent = kinds[kind] || kind;
        el.condition.append(option);
      }
      el.conditionLabel.hidden = (config.conditions || []).length < 2;
      el.status.textContent = `model ${config.model} ready · up to ${config.max_upload_mb} MB per upload`;
      document.body.dataset.ready = "true";
    } catch (err) {
      el.status.textContent = "server not reachable";
      el.status.classList.add("bad");
      showError(err.message);
    }
  }

  start();
})();
