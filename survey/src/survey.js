/*
 * IRI judgment survey (jsPsych 8). The workflow rule export_survey copies this
 * file next to index.html, which embeds the study's settings as JSON
 * (<script type="application/json" id="survey-data">); the participant's list
 * comes from lists/<token>.js, a script that calls iriSurveyList(list) (a
 * script, not JSON fetched, so that the page also runs from file://). Formats
 * in src/iriflow/survey.py. The page knows no other list: the token is in the
 * participant's link.
 *
 * Flow: consent -> instructions -> participant code -> preload -> judgments
 * (query image on top, the options as image buttons; catch trials mixed in)
 * -> end screen with a data download button and, when the data names a
 * post_url, an automatic POST of the same CSV.
 *
 * Safety: text that comes from the participant (the code they type, URL
 * parameters) is validated against a strict pattern and only ever written
 * with textContent or stored as data; it never reaches innerHTML or an HTML
 * string. Text from the experimenter's config is HTML-escaped (esc) before it
 * goes into jsPsych's HTML parameters.
 *
 * URL parameters: list=<token> (required) names the participant's list;
 * participant (or PROLIFIC_PID) skips the code screen when it is valid.
 */
(function () {
  "use strict";

  var PARTICIPANT_RE = /^[A-Za-z0-9_-]{1,64}$/;  // = iriflow.survey.PARTICIPANT_PATTERN
  var LIST_RE = /^[0-9a-f]{20}$/;  // iriflow.survey.TOKEN_CHARS hex digits
  // The question of each trial ("question" in the data; iriflow.survey.QUESTIONS).
  var QUESTIONS = {
    similar: "Which of the images below looks most like the image above?",
    activation: "The image above shows what one unit of a neural network responds to most strongly. " +
      "Which of the images below makes that unit respond more?"
  };

  // --- helpers ------------------------------------------------------------------

  /** HTML-escape experimenter text (config) before it goes into an HTML string. */
  function esc(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[c];
    });
  }

  /** 32-bit FNV-1a over UTF-16 code units; mirrors iriflow.survey.fnv1a32 (order seed). */
  function fnv1a32(text) {
    var h = 0x811c9dc5;
    for (var i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h >>> 0;
  }

  /** mulberry32: a small seeded PRNG returning floats in [0, 1). */
  function mulberry32(seed) {
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      var t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function shuffled(items, random) {
    var out = items.slice();
    for (var i = out.length - 1; i > 0; i--) {
      var j = Math.floor(random() * (i + 1));
      var tmp = out[i];
      out[i] = out[j];
      out[j] = tmp;
    }
    return out;
  }

  /** Replace the page body with a message built from text nodes only. */
  function showMessage(title, lines) {
    var root = document.createElement("div");
    root.className = "iri-message";
    var h = document.createElement("h2");
    h.textContent = title;
    root.appendChild(h);
    lines.forEach(function (line) {
      var p = document.createElement("p");
      p.textContent = line;
      root.appendChild(p);
    });
    document.body.replaceChildren(root);
    return root;
  }

  function readData() {
    var node = document.getElementById("survey-data");
    var data = JSON.parse(node.textContent);
    if (data.format !== 2) {
      throw new Error("unsupported survey data format " + data.format);
    }
    return data;
  }

  // --- set-up -------------------------------------------------------------------

  var data;
  try {
    data = readData();
  } catch (err) {
    showMessage("This study could not be loaded", ["Please contact the researcher.", String(err)]);
    return;
  }
  var params = new URLSearchParams(window.location.search);
  var urlParticipant = params.get("participant") || params.get("PROLIFIC_PID") || "";
  var urlList = params.get("list");
  function badLink() {
    showMessage("This link is not valid", [
      "The link does not name one of this study's participant lists.",
      "Please use the link you were given, or contact the researcher."]);
  }
  if (urlList === null || !LIST_RE.test(urlList)) {
    badLink();
    return;
  }
  // The list file calls this once it has loaded; then the study starts.
  window.iriSurveyList = function (list) {
    window.iriSurveyList = function () {};
    if (!list || list.format !== 2 || list.list !== urlList || list.survey_id !== data.survey_id) {
      badLink();
      return;
    }
    start(list);
  };
  var script = document.createElement("script");
  script.src = "lists/" + urlList + ".js";  // urlList is LIST_RE-checked hex
  script.onerror = badLink;
  document.head.appendChild(script);

  function start(list) {
    var state = {
      consented: false,
      participant: PARTICIPANT_RE.test(urlParticipant) ? urlParticipant : null,
      done: 0
    };
    var plan = [];  // the participant's trials, filled in once the code is known

    var jsPsych = initJsPsych({
      show_progress_bar: true,
      auto_update_progress_bar: false,
      message_progress_bar: "Progress",
      on_finish: function () {
        if (state.consented) {
          showEnd();
        } else {
          showMessage("Thank you", ["You chose not to take part. You may close this window."]);
        }
      }
    });

    /** The participant's trial order (seeded by code and list); tag all data with them. */
    function makePlan() {
      var random = mulberry32(fnv1a32(state.participant + "|" + list.list + "|" + data.shuffle_key));
      plan.splice(0, plan.length);
      shuffled(list.trials, random).forEach(function (t) {
        plan.push({trial_id: t.id, query: t.query, options: t.options, px: t.px, question: t.question});
      });
      jsPsych.data.addProperties({participant: state.participant, list: list.list, survey_id: data.survey_id});
    }

    function imageHtml(src, px, cls) {
      // src values come from the exported data (stimuli/<hex>.png), never from the participant
      return "<img class=\"" + cls + "\" src=\"" + esc(src) + "\" width=\"" + px + "\" height=\"" + px +
        "\" alt=\"\" draggable=\"false\">";
    }

    // --- timeline -----------------------------------------------------------------

    var consent = {
      type: jsPsychHtmlButtonResponse,
      stimulus: "<div class=\"iri-text\"><h2>" + esc(data.title) + "</h2>" +
        data.consent.map(function (p) { return "<p>" + esc(p) + "</p>"; }).join("") + "</div>",
      choices: ["I agree", "I do not agree"],
      data: {screen: "consent"},
      on_finish: function (d) {
        state.consented = d.response === 0;
      }
    };

    var instructions = {
      type: jsPsychInstructions,
      pages: [
        "<div class=\"iri-text\"><h2>How it works</h2>" +
        "<p>On each screen you see one image at the top and two or more images below it.</p>" +
        "<p>Click the image below that looks <b>most like</b> the image at the top. " +
        "Some images are noisy or unusual: go with your first impression.</p>" +
        "<p>Some screens ask another question about the images; the question is written above them.</p>" +
        "<p>There are no time limits, but please do not think too long about any one screen. " +
        "A bar at the top shows your progress.</p></div>",
        "<div class=\"iri-text\"><h2>Before you start</h2>" +
        "<p>Please keep this window open until the end, where you can download your answers.</p>" +
        "<p>Some screens are easy checks of attention; please answer every screen carefully.</p></div>"
      ],
      show_clickable_nav: true,
      button_label_next: "Next",
      button_label_previous: "Back",
      data: {screen: "instructions"}
    };

    var participantForm = {
      type: jsPsychSurveyHtmlForm,
      preamble: "<div class=\"iri-text\"><p>Please enter the participant code you were given " +
        "(letters, digits, '-' and '_' only).</p></div>",
      html: "<p><input type=\"text\" name=\"participant\" id=\"iri-participant\" required " +
        "maxlength=\"64\" pattern=\"[A-Za-z0-9_\\-]{1,64}\" autocomplete=\"off\" spellcheck=\"false\" " +
        "autocapitalize=\"off\" aria-label=\"Participant code\"></p>",
      autofocus: "iri-participant",
      button_label: "Continue",
      data: {screen: "participant"}
    };
    var participantLoop = {
      timeline: [participantForm],
      conditional_function: function () { return state.participant === null; },
      loop_function: function (last) {
        var values = last.values();
        var answer = values.length ? values[values.length - 1].response : null;
        var code = answer && typeof answer.participant === "string" ? answer.participant.trim() : "";
        if (PARTICIPANT_RE.test(code)) {
          state.participant = code;
          return false;
        }
        return true;  // the form's pattern normally prevents this; ask again
      }
    };

    var preload = {
      type: jsPsychPreload,
      images: function () {
        var files = [];
        plan.forEach(function (t) { files.push(t.query); files.push.apply(files, t.options); });
        return files.filter(function (f, i) { return files.indexOf(f) === i; });
      },
      message: "<p>Loading images&hellip;</p>",
      error_message: "<div class=\"iri-text\"><p>The images could not be loaded. " +
        "Please contact the researcher.</p></div>",
      data: {screen: "preload"}
    };

    var judgment = {
      type: jsPsychHtmlButtonResponse,
      stimulus: function () {
        var q = jsPsych.evaluateTimelineVariable("query");
        var px = jsPsych.evaluateTimelineVariable("px");
        var question = QUESTIONS[jsPsych.evaluateTimelineVariable("question")] || QUESTIONS.similar;
        return "<p class=\"iri-question\">" + question + "</p><div class=\"iri-query\">" +
          imageHtml(q, px, "iri-img") + "</div>";
      },
      choices: jsPsych.timelineVariable("options"),
      button_html: function (choice, index) {
        var px = jsPsych.evaluateTimelineVariable("px");
        return "<button type=\"button\" class=\"jspsych-btn iri-option\" aria-label=\"Option " +
          (index + 1) + "\">" + imageHtml(choice, px, "iri-img") + "</button>";
      },
      button_layout: "grid",
      grid_rows: null,
      grid_columns: function () {
        return Math.min(jsPsych.evaluateTimelineVariable("options").length, 5);
      },
      enable_button_after: 250,
      post_trial_gap: 200,
      data: {
        screen: "judgment",
        trial_id: jsPsych.timelineVariable("trial_id"),
        query_image: jsPsych.timelineVariable("query"),
        option_images: function () { return jsPsych.evaluateTimelineVariable("options").join("|"); }
      },
      on_finish: function () {
        state.done += 1;
        jsPsych.progressBar.progress = Math.min(1, state.done / plan.length);
      }
    };

    var judgments = {
      timeline: [preload, {timeline: [judgment], timeline_variables: plan}],
      on_timeline_start: makePlan
    };

    // --- end screen ---------------------------------------------------------------

    function csvFileName() {
      var stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
      return "iri-survey_" + state.participant + "_" + stamp + ".csv";
    }

    function showEnd() {
      var csv = jsPsych.data.get().csv();
      var root = showMessage("Thank you!", [
        "You have answered all " + plan.length + " screens.",
        "Your participant code: " + state.participant]);
      var download = document.createElement("button");
      download.type = "button";
      download.id = "iri-download";
      download.className = "jspsych-btn";
      download.textContent = "Download your answers (CSV)";
      download.addEventListener("click", function () {
        jsPsych.data.get().localSave("csv", csvFileName());
      });
      var hint = document.createElement("p");
      hint.textContent = data.post_url
        ? "Your answers are being sent to the researcher. You can also keep a copy:"
        : "Please download your answers and send the file to the researcher:";
      root.appendChild(hint);
      root.appendChild(download);
      if (data.post_url) {
        var status = document.createElement("p");
        status.id = "iri-post-status";
        status.textContent = "Sending...";
        root.appendChild(status);
        fetch(data.post_url, {method: "POST", headers: {"Content-Type": "text/csv"}, body: csv})
          .then(function (response) {
            if (!response.ok) {
              throw new Error("HTTP " + response.status);
            }
            status.textContent = "Your answers were sent. You may close this window.";
            status.dataset.state = "sent";
          })
          .catch(function (err) {
            status.textContent = "Sending failed (" + err.message + "). Please download your " +
              "answers and send the file to the researcher.";
            status.dataset.state = "failed";
          });
      }
    }

    jsPsych.run([consent, {
      timeline: [instructions, participantLoop, judgments],
      conditional_function: function () { return state.consented; }
    }]);
  }
})();
