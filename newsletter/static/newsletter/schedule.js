// The weekday matters only for weekly digests: show its field only then.
(function () {
  var frequency = document.getElementById("id_frequency");
  var weekday = document.getElementById("id_weekday");
  if (!frequency || !weekday) return;
  var field = weekday.closest(".field") || weekday;
  function follow() { field.hidden = frequency.value !== "weekly"; }
  frequency.addEventListener("change", follow);
  follow();
})();
