// A single self-contained HTML page: no network references. The result is embedded as JSON
// in a <script type="application/json"> block and drawn by the page's own script, which builds
// every element with DOM calls and textContent (token text is never parsed as HTML).
#include <span>
#include <string_view>

#include "report/common.h"
#include "report/writers.h"
#include "util/json_writer.h"

namespace pizza::report::detail {

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {

// '<' only occurs inside JSON strings, where \u003c means the same character; escaping every
// one keeps "</script>" and "<!--" in token text from ending or confusing the data block.
std::string script_safe(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  for (char c : json) {
    if (c == '<') {
      out += "\\u003c";
    } else {
      out += c;
    }
  }
  return out;
}

// {"records": [{"id", "result", "segments"} or {"id", "error"}]}: a single result is a batch of
// one record without an id (the page then shows no record selector).
std::string page_data(std::span<const BatchRecord> records) {
  JsonWriter w;
  w.begin_object();
  w.key("records").begin_array();
  for (const BatchRecord& rec : records) {
    w.begin_object().field("id", rec.id);
    if (rec.result == nullptr) {
      w.field("error", rec.error);
    } else {
      w.key("result").raw(render_json(*rec.result, -1));
      w.key("segments").begin_array();
      for (const Segment& seg : prompt_segments(*rec.result)) w.begin_array().value(seg.text).value(seg.unit).end_array();
      w.end_array();
    }
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return script_safe(w.str());
}

constexpr std::string_view kStyle = R"CSS(
body { font: 15px/1.5 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
#meta { color: #555; margin: 0 0 1em; }
.controls label { margin-right: 1.5em; }
.text { white-space: pre-wrap; font-family: ui-monospace, monospace; border: 1px solid #ddd;
        padding: .8em; margin: .8em 0; line-height: 2; }
.unit { border-bottom: 4px solid transparent; padding: 0 1px; }
.special { color: #777; font-style: italic; }
.output { font-weight: bold; cursor: pointer; border-bottom: 4px solid transparent; }
.output.selected { outline: 2px solid #333; }
.legend { color: #555; font-size: .9em; }
.scroll { overflow: auto; max-height: 80vh; }
table { border-collapse: collapse; font-family: ui-monospace, monospace; font-size: 12px; }
th, td { border: 1px solid #eee; padding: 2px 5px; white-space: pre; }
thead th { position: sticky; top: 0; background: #fafafa; }
td { text-align: right; }
th.row { text-align: left; background: #fafafa; }
tr.stat th, tr.stat td { background: #f4f4f4; }
#record-error { color: #a00; font-family: ui-monospace, monospace; white-space: pre-wrap; }
)CSS";

// Mirrors detail::heat_color (common.cpp) so terminal and page agree.
constexpr std::string_view kScript = R"JS(
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('pizza-data').textContent);
  // The record shown: set by load(); a batch page switches records with #record-select.
  var res, segments, matrices, state, genIndex;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function finite(v) { return typeof v === 'number' && isFinite(v); }
  function maxAbs(values) {
    var m = 0;
    values.forEach(function (v) { if (finite(v)) m = Math.max(m, Math.abs(v)); });
    return m;
  }
  function heat(v, scale) {
    if (!finite(v)) return 'rgb(200,200,200)';
    if (!(scale > 0)) return 'rgb(255,255,255)';
    var t = Math.max(-1, Math.min(1, v / scale)), a = Math.abs(t);
    function ch(full) { return Math.round(255 - a * (255 - full)); }
    return t >= 0 ? 'rgb(255,' + ch(60) + ',' + ch(60) + ')'
                  : 'rgb(' + ch(60) + ',' + ch(120) + ',255)';
  }
  // Four significant digits; exponent form for very large or small magnitudes (re-parsing a
  // rounded DBL_MAX would give Infinity).
  function fmt(v) {
    if (v === null) return 'NaN';
    if (!finite(v)) return String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }
  function visible(s) {
    return s.replace(/ /g, '\u2423').replace(/\n/g, '\u21b5').replace(/\t/g, '\u2192')
      .replace(/[\x00-\x1f\x7f]/g, function (c) {
        return '\\x' + ('0' + c.charCodeAt(0).toString(16).toUpperCase()).slice(-2);
      });
  }
  function means(m) {
    var cols = res.inputs.length, out = [];
    for (var c = 0; c < cols; ++c) {
      var s = 0;
      m.forEach(function (row) { s += row[c] === null ? NaN : row[c]; });
      out.push(m.length ? s / m.length : 0);
    }
    return out;
  }
  function scores() {
    var m = matrices[state.matrix][1];
    return state.row < 0 ? means(m) : m[state.row];
  }

  function drawPrompt() {
    var box = document.getElementById('prompt');
    box.textContent = '';
    var s = scores();
    var scale = maxAbs(s.filter(function (v, i) { return !res.inputs[i].generated; }));
    segments.forEach(function (seg) {
      var text = seg[0], unit = seg[1];
      if (unit < 0) { box.appendChild(document.createTextNode(text)); return; }
      var span = el('span', 'unit' + (res.inputs[unit].special ? ' special' : ''), text);
      span.style.borderBottomColor = heat(s[unit], scale);
      span.title = '#' + unit + ' ' + JSON.stringify(res.inputs[unit].text) + ': ' + fmt(s[unit]);
      span.dataset.unit = unit;
      box.appendChild(span);
    });
    var genScale = maxAbs(s.filter(function (v, i) { return res.inputs[i].generated; }));
    res.outputs.forEach(function (o, oi) {
      var span = el('span', 'output' + (oi === state.row ? ' selected' : ''), o.text);
      var col = genIndex.indexOf(oi);
      var shown = col >= 0 && (state.row < 0 || oi < state.row);
      if (shown) span.style.borderBottomColor = heat(s[col], genScale);
      span.title = 'output #' + oi + (o.prob === null ? '' : ' p=' + fmt(o.prob)) +
                   (shown ? ', score ' + fmt(s[col]) : '') + ' (click to explain it)';
      span.addEventListener('click', function () {
        state.row = state.row === oi ? -1 : oi;
        draw();
      });
      box.appendChild(span);
    });
  }

  function drawTable() {
    var table = document.getElementById('heatmap');
    table.textContent = '';
    var m = matrices[state.matrix][1];
    var all = [];
    m.forEach(function (row) { all = all.concat(row); });
    var scale = maxAbs(all), totals = means(m), totalScale = maxAbs(totals);
    var thead = el('thead'), hr = el('tr');
    hr.appendChild(el('th', 'row', 'input \\ output'));
    res.outputs.forEach(function (o, oi) {
      var th = el('th', oi === state.row ? 'selected' : '', visible(o.text));
      th.title = 'output #' + oi + (o.id === null ? '' : ' id ' + o.id);
      hr.appendChild(th);
    });
    hr.appendChild(el('th', '', 'mean'));
    thead.appendChild(hr);
    table.appendChild(thead);
    var tbody = el('tbody');
    res.inputs.forEach(function (u, i) {
      var tr = el('tr');
      var th = el('th', 'row', i + ' ' + visible(u.text) + (u.generated ? '*' : ''));
      th.title = 'input #' + i + (u.token_ids.length ? ' ids ' + u.token_ids.join(' ') : '');
      tr.appendChild(th);
      m.forEach(function (row, oi) {
        var v = row[i];
        var td = el('td', '', fmt(v));
        td.style.background = heat(v, scale);
        td.title = JSON.stringify(u.text) + ' \u2192 ' + JSON.stringify(res.outputs[oi].text) +
                   ': ' + (v === null ? 'NaN' : String(v));
        tr.appendChild(td);
      });
      var mean = el('td', '', fmt(totals[i]));
      mean.style.background = heat(totals[i], totalScale);
      mean.title = 'mean over outputs: ' + String(totals[i]);
      tr.appendChild(mean);
      tbody.appendChild(tr);
    });
    Object.keys(res.row_stats).forEach(function (name) {
      var tr = el('tr', 'stat');
      tr.appendChild(el('th', 'row', name));
      res.row_stats[name].forEach(function (v) { tr.appendChild(el('td', '', fmt(v))); });
      tr.appendChild(el('td'));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
  }

  function drawSelectors() {
    var ms = document.getElementById('matrix-select');
    ms.textContent = '';
    matrices.forEach(function (entry, i) { ms.appendChild(el('option', '', entry[0] || 'scores')).value = i; });
    ms.value = state.matrix;
    ms.parentNode.style.display = matrices.length > 1 ? '' : 'none';
    ms.onchange = function () { state.matrix = Number(ms.value); draw(); };
    var rs = document.getElementById('row-select');
    rs.textContent = '';
    rs.appendChild(el('option', '', 'mean over all outputs')).value = -1;
    res.outputs.forEach(function (o, oi) {
      rs.appendChild(el('option', '', '#' + oi + ' ' + visible(o.text))).value = oi;
    });
    rs.value = state.row;
    rs.onchange = function () { state.row = Number(rs.value); draw(); };
  }

  function draw() {
    drawSelectors();
    drawPrompt();
    drawTable();
  }

  function load(i) {
    var rec = data.records[i];
    var view = document.getElementById('view'), error = document.getElementById('record-error');
    document.getElementById('record-select').value = i;
    if (!rec.result) {
      view.style.display = 'none';
      error.textContent = 'record ' + JSON.stringify(rec.id) + ' failed: ' + rec.error;
      document.getElementById('meta').textContent = '';
      return;
    }
    view.style.display = '';
    error.textContent = '';
    res = rec.result;
    segments = rec.segments;
    matrices = res.matrices
      ? Object.keys(res.matrices).map(function (n) { return [n, res.matrices[n]]; })
      : [[res.matrix_name, res.matrix]];
    state = { matrix: 0, row: -1 };
    genIndex = [];
    var k = 0;
    res.inputs.forEach(function (u) { genIndex.push(u.generated ? k++ : -1); });
    var meta = [['method', res.method], ['target', res.target], ['unit', res.unit],
                ['engine', res.engine], ['model', res.model.path], ['type', res.model.model_type]];
    document.getElementById('meta').textContent = meta
      .filter(function (kv) { return kv[1]; })
      .map(function (kv) { return kv[0] + ': ' + kv[1]; }).join(' \u00b7 ');
    draw();
  }

  var records = document.getElementById('record-select');
  data.records.forEach(function (rec, i) {
    records.appendChild(el('option', '', rec.id + (rec.result ? '' : ' (failed)'))).value = i;
  });
  records.parentNode.parentNode.style.display = data.records.length > 1 ? '' : 'none';
  records.onchange = function () { load(Number(records.value)); };
  // #record-N opens the N-th record (0-based), so a page can be linked at one record.
  var m = /^#record-(\d+)$/.exec(location.hash);
  load(m && Number(m[1]) < data.records.length ? Number(m[1]) : 0);
})();
)JS";

}  // namespace

std::string render_html_page(std::span<const BatchRecord> records) {
  std::string title = "pizza attribution";
  if (records.size() == 1 && records[0].result) title += ": " + records[0].result->method;
  if (records.size() > 1) title += ": " + std::to_string(records.size()) + " records";
  std::string out;
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += "<title>" + html_escape(title) + "</title>\n";
  out += "<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n";
  out += "<h1>pizza attribution</h1>\n";
  out += "<div class=\"controls\" id=\"record-controls\"><label>Record <select id=\"record-select\"></select></label></div>\n";
  out += "<p id=\"meta\"></p>\n<p id=\"record-error\"></p>\n<div id=\"view\">\n";
  out += "<div class=\"controls\"><label>Matrix <select id=\"matrix-select\"></select></label>"
         "<label>Colour the prompt by <select id=\"row-select\"></select></label></div>\n";
  out += "<div id=\"prompt\" class=\"text\"></div>\n";
  out += "<p class=\"legend\">Underline and cell colour: red = positive, blue = negative, white "
         "= 0 (scaled to the largest |score| shown). Click a generated token to see what it was "
         "attributed to. * = an earlier generated token.</p>\n";
  out += "<div class=\"scroll\"><table id=\"heatmap\"></table></div>\n</div>\n";
  out += "<noscript>This report draws its views with JavaScript; the raw data is in the "
         "pizza-data block of this file.</noscript>\n";
  out += "<script type=\"application/json\" id=\"pizza-data\">" + page_data(records) + "</script>\n";
  out += "<script>" + std::string(kScript) + "</script>\n</body>\n</html>\n";
  return out;
}

std::string render_html(const AttributionResult& r) {
  const BatchRecord one{"", &r, ""};
  return render_html_page(std::span(&one, 1));
}

}  // namespace pizza::report::detail
