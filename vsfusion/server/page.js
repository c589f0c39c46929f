// The page of serve.py: upload a clip, or stream the webcam; the top 5 classes as bars.
"use strict";

const $ = (id) => document.getElementById(id);
const MB = 1024 * 1024;
const FPS = 10;            // webcam frames sent per second (fewer when the connection lags)
const FRAME_SIDE = 320;    // longer side of a sent frame, pixels
const MAX_BUFFERED = MB;   // frames are skipped while this much is still unsent
const LABELS = {
  "video": "video (with the sensor stream generated from it)",
  "video+sensor": "video + sensor recording",
};

let info = null;

function showError(el, message) {
  el.textContent = message || "";
  el.hidden = !message;
}

// results: {"video": [[class, p], ...], "video+sensor": [...]}
function render(container, results, sensorName) {
  container.replaceChildren();
  for (const [key, top] of Object.entries(results)) {
    const box = document.createElement("div");
    box.className = "model";
    box.dataset.model = key;
    box.dataset.top1 = top.length ? top[0][0] : "";
    const title = document.createElement("h3");
    title.textContent = (LABELS[key] || key) + (key === "video+sensor" && sensorName ? ` (${sensorName})` : "");
    const list = document.createElement("ol");
    for (const [name, p] of top) {
      const row = document.createElement("li");
      row.className = "row";
      row.dataset.class = name;
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = name;
      label.title = name;
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "p";
      value.textContent = `${(100 * p).toFixed(1)}%`;
      row.append(label, bar, value);
      list.append(row);
    }
    box.append(title, list);
    container.append(box);
  }
}

async function loadInfo() {
  try {
    const r = await fetch("/api/info");
    info = await r.json();
  } catch (e) {
    $("about").textContent = `The server does not answer (${e.message}); is serve.py running?`;
    return;
  }
  const sensor = info.sensor
    ? `, and with the sensor recording ${info.sensor} given at start (video + sensor)`
    : info.sensor_model ? "; add a sensor recording for the video + sensor model" : "";
  $("about").textContent = `Run ${info.run}: ${info.classes.length} classes. Top ${info.top_k} ` +
    `from the video${sensor}. Uploads up to ${info.max_upload_mb} MB.`;
  $("video-file").accept = info.video_types.join(",");
  $("sensor-file").accept = info.sensor_types.join(",");
  $("live-about").textContent = `Each prediction reads the last ${info.window} frames ` +
    `(${FPS} frames/s sent), every ${info.every} frames while the model keeps up.`;
}

async function upload(event) {
  event.preventDefault();
  const error = $("upload-error");
  const status = $("upload-status");
  showError(error, "");
  $("upload-results").replaceChildren();
  const video = $("video-file").files[0];
  const sensor = $("sensor-file").files[0];
  if (!video) {
    showError(error, "Choose a video file first.");
    return;
  }
  const total = video.size + (sensor ? sensor.size : 0);
  if (info && total > info.max_upload_mb * MB) {
    showError(error, `${video.name}: ${(total / MB).toFixed(1)} MB, over the ` +
      `${info.max_upload_mb} MB upload limit of this server; choose a shorter or smaller clip ` +
      "(or start serve.py with a larger --max_upload_mb).");
    return;
  }
  const form = new FormData();
  form.append("video", video);
  if (sensor) form.append("sensor", sensor);
  $("upload-button").disabled = true;
  status.textContent = `Predicting ${video.name}…`;
  try {
    const r = await fetch("/api/predict", { method: "POST", body: form });
    let body;
    try {
      body = await r.json();
    } catch {
      body = { error: `the server answered ${r.status} ${r.statusText}` };
    }
    if (!r.ok || body.error) {
      showError(error, body.error || `the server answered ${r.status}`);
      status.textContent = "";
    } else {
      render($("upload-results"), body.results, body.sensor);
      status.textContent = `${body.video}${body.sensor ? " + " + body.sensor : ""}: ` +
        `answered in ${body.seconds.toFixed(2)} s.`;
    }
  } catch (e) {
    showError(error, `The upload failed (${e.message}); is serve.py still running?`);
    status.textContent = "";
  } finally {
    $("upload-button").disabled = false;
  }
}

// -- webcam ---------------------------------------------------------------------------------

const live = { ws: null, stream: null, timer: null, encoding: false, sent: 0, answers: 0, window: 0 };
const canvas = document.createElement("canvas");

function liveStatus(extra) {
  const filled = Math.min(live.sent, live.window);
  $("live-status").textContent = `${live.sent} frames sent (window ${filled}/${live.window}), ` +
    `${live.answers} predictions${extra ? "; " + extra : ""}.`;
}

function sendFrame() {
  const video = $("live-video");
  const ws = live.ws;
  // drop this frame rather than queue it: still encoding the last one, or the socket lags
  if (!ws || ws.readyState !== WebSocket.OPEN || live.encoding || ws.bufferedAmount > MAX_BUFFERED) return;
  if (!video.videoWidth) return;
  const scale = Math.min(1, FRAME_SIDE / Math.max(video.videoWidth, video.videoHeight));
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  live.encoding = true;
  canvas.toBlob((blob) => {
    live.encoding = false;
    if (blob && live.ws === ws && ws.readyState === WebSocket.OPEN) {
      ws.send(blob);
      live.sent += 1;
      liveStatus();
    }
  }, "image/jpeg", 0.8);
}

function onLiveMessage(event) {
  let m;
  try {
    m = JSON.parse(event.data);
  } catch {
    return;
  }
  if (m.type === "hello") {
    live.window = m.window;
    liveStatus();
  } else if (m.type === "prediction") {
    live.answers += 1;
    showError($("live-error"), "");
    render($("live-results"), m.results, m.sensor || (info && info.sensor));
    liveStatus(`the last took ${m.seconds.toFixed(2)} s after ${m.waited.toFixed(2)} s waiting for the model`);
  } else if (m.type === "error") {
    showError($("live-error"), m.message);
  }
}

async function startLive() {
  showError($("live-error"), "");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError($("live-error"), "This browser gives no webcam to this page (it needs https or localhost).");
    return;
  }
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (e) {
    showError($("live-error"), `No webcam (${e.name}: ${e.message}).`);
    return;
  }
  const video = $("live-video");
  video.srcObject = live.stream;
  await video.play().catch(() => {});
  Object.assign(live, { sent: 0, answers: 0, window: info ? info.window : 0 });
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws/live`);
  live.ws = ws;
  ws.onmessage = onLiveMessage;
  ws.onopen = () => {
    live.timer = setInterval(sendFrame, 1000 / FPS);
  };
  ws.onclose = (event) => {
    if (live.ws === ws) {
      showError($("live-error"), `The live connection closed (code ${event.code}` +
        `${event.reason ? ": " + event.reason : ""}); press Start webcam to reconnect.`);
      stopLive();
    }
  };
  $("live-start").disabled = true;
  $("live-stop").disabled = false;
  liveStatus();
}

function stopLive() {
  clearInterval(live.timer);
  live.timer = null;
  const ws = live.ws;
  live.ws = null;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
  if (live.stream) live.stream.getTracks().forEach((t) => t.stop());
  live.stream = null;
  $("live-video").srcObject = null;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
}

$("upload-form").addEventListener("submit", upload);
$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", stopLive);
loadInfo();
