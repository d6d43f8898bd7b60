// Tooltips for the dashboard's pygal charts, loaded by each chart's SVG document: the day and
// value of the dot under the pointer. A file of ours because pygal's own tooltip script is
// inline or on a CDN, and the content security policy allows neither.
(function () {
  var NS = "http://www.w3.org/2000/svg";
  var tip = null;

  function make(plot) {
    tip = document.createElementNS(NS, "g");
    tip.setAttribute("class", "pb-tooltip");
    tip.setAttribute("pointer-events", "none");
    tip.appendChild(document.createElementNS(NS, "rect"));
    tip.appendChild(document.createElementNS(NS, "text"));
    tip.firstChild.setAttribute("rx", "3");
    tip.firstChild.setAttribute("fill", "#333");
    tip.lastChild.setAttribute("fill", "#fff");
    tip.lastChild.setAttribute("font-size", "12");
    tip.lastChild.setAttribute("text-anchor", "middle");
    plot.appendChild(tip);
  }

  function describe(dot) {
    var group = dot.parentNode;
    var value = group.querySelector("desc.value");
    var day = group.querySelector("desc.x_label");
    var serie = dot.closest(".series");
    var index = serie ? (serie.getAttribute("class").match(/serie-(\d+)/) || [])[1] : null;
    var legend = document.querySelectorAll(".legends .legend text")[Number(index)];
    return [day && day.textContent, legend && legend.textContent, value && value.textContent]
      .filter(Boolean).join(" · ");
  }

  document.addEventListener("mouseover", function (event) {
    var dot = event.target.closest && event.target.closest(".tooltip-trigger");
    if (!dot) {
      if (tip) tip.setAttribute("visibility", "hidden");
      return;
    }
    if (!tip || tip.parentNode !== dot.closest(".plot")) make(dot.closest(".plot"));
    var x = Number(dot.getAttribute("cx")), y = Number(dot.getAttribute("cy"));
    var text = tip.lastChild, box = tip.firstChild;
    text.textContent = describe(dot);
    text.setAttribute("x", x);
    text.setAttribute("y", y - 12);
    var size = text.getBBox();
    var area = dot.closest(".plot").querySelector("rect.background");
    var width = area ? Number(area.getAttribute("width")) : Infinity;
    var shift = Math.min(0, width - (size.x + size.width + 5)) + Math.max(0, 5 - size.x);
    if (shift) {  // keep it inside the plot, near the edges too
      text.setAttribute("x", x + shift);
      size = text.getBBox();
    }
    box.setAttribute("x", size.x - 5);
    box.setAttribute("y", size.y - 3);
    box.setAttribute("width", size.width + 10);
    box.setAttribute("height", size.height + 6);
    tip.setAttribute("visibility", "visible");
  });
})();
