// A SignalR peer built on the official JavaScript client (@microsoft/signalr,
// @microsoft/signalr-protocol-msgpack), driven by the Go interop tests in
// JSON lines: commands on standard input, events on standard output, logs
// on standard error. It speaks the Tharga protocol the way a JavaScript
// application would: handlers registered with connection.on for the three
// protocol targets, wrappers {type, payload} with the payload a JSON string.
//
// Configuration: the environment variable PEER_CONFIG, a JSON object:
//   url          the hub URL ("http://127.0.0.1:1234/hub")
//   protocol     "json" (default) or "messagepack"
//   headers      extra HTTP headers (X-Api-Key, ...)
//   token        a key returned by accessTokenFactory (Authorization: Bearer)
//   reconnect    delays in ms for withAutomaticReconnect; absent: no reconnect
//   echo         echo the correlationId of a SendMessage in its answer
//   transport    "websockets", "serversentevents" or "longpolling" to allow
//                only that transport; default: all
//   logLevel     the client's log level name (default "Warning")
//
// Events: started {connectionId} | start-failed {error} | post {wrapper} |
// request {wrapper} | answered {wrapper} | response {wrapper} |
// reconnecting {error} | reconnected {connectionId} | closed {error} |
// done {id} | failed {id, error} | stopped.
//
// Commands: {"op":"post"|"send", "id", "type", "payload" (an object,
// serialized here), "correlationId"?} | {"op":"raw", "id", "target",
// "wrapper" (sent as is)} | {"op":"invoke", "id", "method", "args"} |
// {"op":"stop"}. Standard input closing stops the connection and
// ends the process.
"use strict";

const signalR = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");
const readline = require("readline");

const cfg = JSON.parse(process.env.PEER_CONFIG || "{}");

function emit(event, fields) {
  process.stdout.write(JSON.stringify(Object.assign({ event }, fields)) + "\n");
}

// The part of a .NET assembly-qualified name before the first top-level
// comma: how a Tharga receiver matches a type.
function fullName(type) {
  let depth = 0;
  for (let i = 0; i < type.length; i++) {
    const c = type[i];
    if (c === "[") depth++;
    else if (c === "]" && depth > 0) depth--;
    else if (c === "," && depth === 0) return type.slice(0, i).trim();
  }
  return type.trim();
}

// The request handlers of this peer, by full type name. Payloads are
// PascalCase, as System.Text.Json and Go's encoding/json (untagged) write.
const handlers = {
  "Interop.Ping": (msg) => ({
    type: "Interop.Pong, Interop.Js, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null",
    payload: { Reply: "js: " + msg.Message },
  }),
  "Interop.StatusQuery": () => ({
    type: "Interop.StatusReport, Interop.Js",
    payload: { Healthy: true, Runtime: "node " + process.version },
  }),
  "Interop.Fail": () => {
    throw new Error("the JavaScript handler failed");
  },
};

const logLevels = signalR.LogLevel;
const minLevel = logLevels[cfg.logLevel || "Warning"];
const logger = {
  log(level, message) {
    if (level >= minLevel) {
      process.stderr.write(`[signalr ${logLevels[level]}] ${message}\n`);
    }
  },
};

const options = { headers: cfg.headers || {} };
if (cfg.token !== undefined) {
  options.accessTokenFactory = () => cfg.token;
}
if (cfg.transport) {
  options.transport = {
    websockets: signalR.HttpTransportType.WebSockets,
    serversentevents: signalR.HttpTransportType.ServerSentEvents,
    longpolling: signalR.HttpTransportType.LongPolling,
  }[cfg.transport];
}

let builder = new signalR.HubConnectionBuilder().withUrl(cfg.url, options).configureLogging(logger);
if (cfg.protocol === "messagepack") {
  builder = builder.withHubProtocol(new MessagePackHubProtocol());
}
if (Array.isArray(cfg.reconnect)) {
  builder = builder.withAutomaticReconnect(cfg.reconnect);
}
const connection = builder.build();

// Handlers are registered before start, as the client requires.
connection.on("PostMessage", (w) => emit("post", { wrapper: w }));
connection.on("ResponseMessage", (w) => emit("response", { wrapper: w }));
connection.on("SendMessage", (w) => {
  emit("request", { wrapper: w });
  let answer;
  const name = fullName(String(w.type));
  const handler = handlers[name];
  try {
    if (!handler) {
      throw new Error(`Cannot find handler for type '${name}'.`);
    }
    const res = handler(JSON.parse(w.payload));
    answer = { type: res.type, payload: JSON.stringify(res.payload) };
  } catch (e) {
    // The Tharga error answer: the request's type, {"Error": "..."}.
    answer = { type: w.type, payload: JSON.stringify({ Error: e.message }) };
  }
  if (cfg.echo && w.correlationId !== undefined) {
    answer.correlationId = w.correlationId;
  }
  connection
    .send("ResponseMessage", answer)
    .then(() => emit("answered", { wrapper: answer }))
    .catch((e) => emit("failed", { id: "answer", error: String(e) }));
});
connection.onreconnecting((e) => emit("reconnecting", { error: e ? String(e) : "" }));
connection.onreconnected((id) => emit("reconnected", { connectionId: id }));
connection.onclose((e) => emit("closed", { error: e ? String(e) : "" }));

let stopping = null;
function stop() {
  if (!stopping) {
    stopping = connection.stop().then(() => emit("stopped", {}));
  }
  return stopping;
}

async function run(cmd) {
  switch (cmd.op) {
    case "post":
    case "send": {
      const w = { type: cmd.type, payload: JSON.stringify(cmd.payload) };
      if (cmd.correlationId !== undefined) {
        w.correlationId = cmd.correlationId;
      }
      await connection.send(cmd.op === "post" ? "PostMessage" : "SendMessage", w);
      return {};
    }
    case "raw":
      // A wrapper exactly as given: other key spellings, odd values.
      await connection.send(cmd.target, cmd.wrapper);
      return {};
    case "invoke":
      return { result: await connection.invoke(cmd.method, ...(cmd.args || [])) };
    case "stop":
      await stop();
      return {};
    default:
      throw new Error("unknown op " + cmd.op);
  }
}

// Commands run one at a time, in the order they came: posts leave in order.
let chain = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  chain = chain.then(() =>
    run(cmd).then(
      (r) => emit("done", Object.assign({ id: cmd.id }, r)),
      (e) => emit("failed", { id: cmd.id, error: String(e) })
    )
  );
});
rl.on("close", () => {
  // Stop at once: a command still waiting (an invoke nobody answers)
  // fails when the connection stops.
  stop()
    .catch(() => {})
    .then(() => process.exit(0));
});

connection.start().then(
  () => emit("started", { connectionId: connection.connectionId }),
  (e) => {
    emit("start-failed", { error: String(e) });
  }
);
