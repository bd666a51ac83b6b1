// A small, offline API reference: renders the app's own /openapi.json (no CDN, unlike Swagger UI).
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function resolve(spec, schema) {
  if (schema && schema.$ref) return spec.components.schemas[schema.$ref.split("/").pop()];
  return schema;
}

function paragraphs(text) {
  const div = el("div");
  for (const block of (text || "").split(/\n\s*\n/)) if (block.trim()) div.appendChild(el("p", block.trim()));
  return div;
}

async function render() {
  const spec = await (await fetch("/openapi.json")).json();
  const root = document.getElementById("docs");
  root.replaceChildren(el("p", `${spec.info.title} ${spec.info.version}: ${spec.info.description || ""}`));
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const h = el("h2");
      h.append(el("span", method.toUpperCase(), "method"), path);
      root.append(h, el("p", op.summary || ""), paragraphs(op.description));
      if (op.parameters && op.parameters.length) {
        const t = el("table");
        t.appendChild(el("tr")).append(el("th", "parameter"), el("th", "in"), el("th", "type"), el("th", "description"));
        for (const p of op.parameters) {
          const s = p.schema || {};
          const type = s.type || (s.anyOf || []).map((x) => x.type).join(" | ");
          t.appendChild(el("tr")).append(el("td", p.name), el("td", p.in), el("td", type), el("td", p.description || ""));
        }
        root.appendChild(t);
      }
      if (op.requestBody) {
        root.appendChild(el("h3", "request body"));
        for (const [type, c] of Object.entries(op.requestBody.content)) {
          root.append(el("p", type), el("pre", JSON.stringify(resolve(spec, c.schema), null, 1)));
        }
      }
      root.appendChild(el("h3", "responses"));
      for (const [code, r] of Object.entries(op.responses || {})) {
        const schema = r.content && r.content["application/json"] && resolve(spec, r.content["application/json"].schema);
        root.appendChild(el("p", `${code}: ${r.description}`));
        if (schema && schema.properties) root.appendChild(el("pre", JSON.stringify(schema.properties, null, 1)));
      }
    }
  }
}

render().catch((err) => { document.getElementById("docs").textContent = `could not load /openapi.json: ${err}`; });
