"""The CSS and JavaScript of the attention page (inlined into one self-contained HTML file)."""

CSS = """
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; background: #fff; }
h1 { font-size: 18px; margin: 0 0 8px; }
#controls { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; margin-bottom: 10px; }
#controls label { display: flex; gap: 4px; align-items: center; }
#layout { display: flex; gap: 18px; align-items: flex-start; }
#thumbs { display: grid; gap: 4px; align-content: start; }
#thumbs canvas { border: 2px solid transparent; cursor: pointer; image-rendering: pixelated; }
#thumbs canvas.on { border-color: #d62728; }
#thumbs .hdr { font-size: 11px; color: #666; text-align: center; align-self: center; }
#info { font-family: ui-monospace, monospace; min-height: 1.4em; margin: 6px 0; white-space: pre; }
#view text { font-family: ui-monospace, monospace; font-size: 12px; cursor: default; }
.hint { color: #666; font-size: 12px; }
"""

JS = r"""
const DATA = JSON.parse(document.getElementById('attention-data').textContent);
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
                '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939'];
const $ = (id) => document.getElementById(id);
const state = { map: 0, layer: 0, head: 0, view: 'matrix', query: null };
document.title = DATA.title;
$('title').textContent = DATA.title;

function option(select, value, text) {
  const o = document.createElement('option'); o.value = value; o.textContent = text; select.appendChild(o);
}
function cur() { return DATA.maps[state.map]; }
function weights(layer, head) {  // a flat array t*s of values in [0, 1]; head -1: mean of heads
  const m = cur();
  if (head >= 0) return m.w[layer][head].map((v) => v / 1000);
  const out = new Array(m.queries.length * m.keys.length).fill(0);
  for (let h = 0; h < m.heads; h++) m.w[layer][h].forEach((v, i) => { out[i] += v / 1000 / m.heads; });
  return out;
}
function rgb(v) {  // white -> dark blue on a sqrt scale, so weak weights stay visible
  const c = 1 - Math.sqrt(Math.max(0, Math.min(1, v)));
  return [Math.round(8 + 247 * c), Math.round(48 + 207 * c), Math.round(107 + 148 * c)];
}
function shade(v) { const [r, g, b] = rgb(v); return `rgb(${r},${g},${b})`; }

function fillControls() {
  DATA.maps.forEach((m, i) => option($('kind'), i, m.title));
  refillLayerHead();
}
function refillLayerHead() {
  const m = cur();
  $('layer').innerHTML = ''; $('head').innerHTML = '';
  for (let l = 0; l < m.layers; l++) option($('layer'), l, 'layer ' + l);
  option($('head'), -1, 'all heads');
  for (let h = 0; h < m.heads; h++) option($('head'), h, 'head ' + h);
  state.layer = Math.min(state.layer, m.layers - 1);
  state.head = Math.min(state.head, m.heads - 1);
}
function sync() {
  $('kind').value = state.map; $('layer').value = state.layer; $('head').value = state.head;
  $('viewsel').value = state.view;
}

function drawThumbs() {
  const m = cur(), box = $('thumbs'), t = m.queries.length, s = m.keys.length;
  box.innerHTML = '';
  box.style.gridTemplateColumns = `auto repeat(${m.heads}, auto)`;
  box.appendChild(Object.assign(document.createElement('div'), { className: 'hdr' }));
  for (let h = 0; h < m.heads; h++)
    box.appendChild(Object.assign(document.createElement('div'), { className: 'hdr', textContent: 'H' + h }));
  const scale = Math.max(1, Math.floor(64 / Math.max(t, s)));
  for (let l = 0; l < m.layers; l++) {
    box.appendChild(Object.assign(document.createElement('div'), { className: 'hdr', textContent: 'L' + l }));
    for (let h = 0; h < m.heads; h++) {
      const c = document.createElement('canvas');
      c.width = s; c.height = t;
      c.style.width = Math.max(24, s * scale) + 'px'; c.style.height = Math.max(24, t * scale) + 'px';
      const ctx = c.getContext('2d'), img = ctx.createImageData(s, t), w = m.w[l][h];
      for (let i = 0; i < t * s; i++) {
        img.data.set([...rgb(w[i] / 1000), 255], 4 * i);
      }
      ctx.putImageData(img, 0, 0);
      if (l === state.layer && (h === state.head || state.head < 0)) c.className = 'on';
      c.title = `layer ${l} head ${h}`;
      c.onclick = () => { state.layer = l; state.head = h; render(); };
      box.appendChild(c);
    }
  }
}

function svg(tag, attrs, parent) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function info(text) { $('info').textContent = text; }

function drawMatrix() {
  const m = cur(), t = m.queries.length, s = m.keys.length, w = weights(state.layer, state.head);
  const cell = Math.max(6, Math.min(26, Math.floor(620 / Math.max(t, s))));
  const pad = 64, root = $('view');
  root.innerHTML = '';
  const g = svg('svg', { width: pad + s * cell + 10, height: pad + t * cell + 10 }, root);
  const cells = svg('g', { transform: `translate(${pad},${pad})` }, g);
  for (let i = 0; i < t; i++) for (let j = 0; j < s; j++) {
    const v = w[i * s + j];
    const r = svg('rect', { x: j * cell, y: i * cell, width: cell, height: cell, fill: shade(v) }, cells);
    r.onmouseenter = () => { mark(i, j); info(`query ${i} '${m.queries[i]}' -> key ${j} '${m.keys[j]}': ${v.toFixed(3)}`); };
  }
  const font = Math.min(12, cell);
  m.keys.forEach((k, j) => {
    const x = pad + j * cell + cell / 2;
    const e = svg('text', { x: x, y: pad - 4, transform: `rotate(-90 ${x} ${pad - 4})`, 'font-size': font,
                            'dominant-baseline': 'middle' }, g);
    e.textContent = k; e.onmouseenter = () => { mark(null, j); info(`key ${j} '${k}'`); };
  });
  m.queries.forEach((q, i) => {
    const e = svg('text', { x: pad - 4, y: pad + i * cell + cell / 2, 'text-anchor': 'end', 'font-size': font,
                            'dominant-baseline': 'middle' }, g);
    e.textContent = q; e.onmouseenter = () => { mark(i, null); info(`query ${i} '${q}'`); };
  });
  const row = svg('rect', { fill: 'none', stroke: '#d62728', 'stroke-width': 2, visibility: 'hidden' }, cells);
  const col = svg('rect', { fill: 'none', stroke: '#d62728', 'stroke-width': 2, visibility: 'hidden' }, cells);
  function mark(i, j) {
    row.setAttribute('visibility', i === null ? 'hidden' : 'visible');
    col.setAttribute('visibility', j === null ? 'hidden' : 'visible');
    if (i !== null) { row.setAttribute('x', 0); row.setAttribute('y', i * cell); row.setAttribute('width', s * cell); row.setAttribute('height', cell); }
    if (j !== null) { col.setAttribute('x', j * cell); col.setAttribute('y', 0); col.setAttribute('width', cell); col.setAttribute('height', t * cell); }
  }
}

function drawLines() {  // bertviz-style: queries left, keys right, one line per weight
  const m = cur(), t = m.queries.length, s = m.keys.length, rowH = 18, x0 = 110, x1 = 330;
  const heads = state.head >= 0 ? [state.head] : [...Array(m.heads).keys()];
  const root = $('view');
  root.innerHTML = '';
  const g = svg('svg', { width: x1 + 120, height: Math.max(t, s) * rowH + 20 }, root);
  const lines = svg('g', {}, g), qBg = [], kBg = [];
  const all = [];
  heads.forEach((h) => {
    const w = m.w[state.layer][h];
    for (let i = 0; i < t; i++) for (let j = 0; j < s; j++) {
      const v = w[i * s + j] / 1000;
      if (v < 0.02) continue;
      all.push({ i, j, h, v, e: svg('line', { x1: x0 + 6, y1: 10 + i * rowH + rowH / 2, x2: x1 - 6,
        y2: 10 + j * rowH + rowH / 2, stroke: COLORS[h % COLORS.length], 'stroke-width': 2,
        'stroke-opacity': v / heads.length ** 0.5 }, lines) });
    }
  });
  function focus(side, index) {
    all.forEach((l) => l.e.setAttribute('visibility', index === null || l[side] === index ? 'visible' : 'hidden'));
    const other = side === 'i' ? kBg : qBg;
    other.forEach((r) => r.setAttribute('fill', 'none'));
    if (index === null) return;
    const sums = new Array(other.length).fill(0);
    heads.forEach((h) => {
      const w = m.w[state.layer][h];
      for (let k = 0; k < other.length; k++)
        sums[k] += (side === 'i' ? w[index * s + k] : w[k * s + index]) / 1000 / heads.length;
    });
    other.forEach((r, k) => r.setAttribute('fill', shade(Math.min(1, sums[k]))));
    const tops = sums.map((v, k) => [v, k]).sort((a, b) => b[0] - a[0]).slice(0, 3)
      .map(([v, k]) => `'${side === 'i' ? m.keys[k] : m.queries[k]}' ${v.toFixed(2)}`);
    info(`${side === 'i' ? 'query' : 'key'} ${index} '${side === 'i' ? m.queries[index] : m.keys[index]}': ` + tops.join(', '));
  }
  m.queries.forEach((q, i) => {
    qBg.push(svg('rect', { x: x0 - 100, y: 10 + i * rowH, width: 104, height: rowH, fill: 'none' }, g));
    const e = svg('text', { x: x0, y: 10 + i * rowH + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, g);
    e.textContent = q; e.onmouseenter = () => focus('i', i);
  });
  m.keys.forEach((k, j) => {
    kBg.push(svg('rect', { x: x1 - 4, y: 10 + j * rowH, width: 104, height: rowH, fill: 'none' }, g));
    const e = svg('text', { x: x1, y: 10 + j * rowH + rowH / 2, 'dominant-baseline': 'middle' }, g);
    e.textContent = k; e.onmouseenter = () => focus('j', j);
  });
  g.onmouseleave = () => { focus('i', null); info(''); };
  if (state.query !== null && state.query < t) focus('i', state.query);
  const key = $('legend');
  key.innerHTML = '';
  if (heads.length > 1) heads.forEach((h) => {
    const e = Object.assign(document.createElement('span'), { textContent: ' head ' + h + ' ' });
    e.style.color = COLORS[h % COLORS.length]; e.style.fontWeight = 'bold'; key.appendChild(e);
  });
}

function render() {
  sync(); drawThumbs(); $('legend').innerHTML = '';
  (state.view === 'lines' ? drawLines : drawMatrix)();
  const m = cur();
  $('where').textContent = `${m.title}, layer ${state.layer}, ${state.head < 0 ? 'all heads' : 'head ' + state.head}`;
}
$('kind').onchange = (e) => { state.map = +e.target.value; refillLayerHead(); render(); };
$('layer').onchange = (e) => { state.layer = +e.target.value; render(); };
$('head').onchange = (e) => { state.head = +e.target.value; render(); };
$('viewsel').onchange = (e) => { state.view = e.target.value; render(); };
document.addEventListener('keydown', (e) => {
  const m = cur();
  if (e.target.tagName === 'SELECT') return;
  if (e.key === 'ArrowRight') state.head = Math.min(m.heads - 1, state.head + 1);
  else if (e.key === 'ArrowLeft') state.head = Math.max(-1, state.head - 1);
  else if (e.key === 'ArrowDown') state.layer = Math.min(m.layers - 1, state.layer + 1);
  else if (e.key === 'ArrowUp') state.layer = Math.max(0, state.layer - 1);
  else return;
  e.preventDefault(); render();
});
function fromHash() {  // e.g. #kind=2&layer=1&head=-1&view=lines&query=3 (for screenshots and links)
  const p = new URLSearchParams(location.hash.slice(1)), n = (k, d) => (p.has(k) ? +p.get(k) : d);
  state.map = Math.max(0, Math.min(DATA.maps.length - 1, n('kind', 0)));
  refillLayerHead();
  const m = cur();
  state.layer = Math.max(0, Math.min(m.layers - 1, n('layer', 0)));
  state.head = Math.max(-1, Math.min(m.heads - 1, n('head', 0)));
  state.view = p.get('view') === 'lines' ? 'lines' : 'matrix';
  state.query = p.has('query') ? +p.get('query') : null;  // lines view: start focused on this query
}
fillControls();
fromHash();
render();
"""
