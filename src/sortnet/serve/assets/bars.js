"use strict";
/* Top-k probability bars, shared by the serve and studio pages. Class names go in with textContent, never as HTML. */
function bars(container, predictions, res) {
  container.replaceChildren();
  if (res && res.unknown) {  // none of the classes: say so, the closest class stays in the bars below
    const note = document.createElement("div"); note.className = "unknown";
    note.textContent = "unknown (closest: " + res.class + ")"; container.append(note);
  }
  for (const p of predictions.slice(0, 3)) {
    const row = document.createElement("div"); row.className = "row";
    const name = document.createElement("span"); name.className = "name"; name.textContent = p.class;
    name.title = p.class;
    const track = document.createElement("div"); track.className = "track";
    const fill = document.createElement("div"); fill.className = "fill";
    fill.style.width = (100 * p.probability).toFixed(1) + "%"; track.append(fill);
    const pct = document.createElement("span"); pct.className = "pct";
    pct.textContent = (100 * p.probability).toFixed(1) + "%";
    row.append(name, track, pct); container.append(row);
  }
}

