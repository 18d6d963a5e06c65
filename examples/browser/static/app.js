// The page's side of the Tharga protocol, with the official SignalR
// browser client. Every message travels as a wrapper
// {type, payload}, payload being the message as a JSON string with
// PascalCase members. A request (SendMessage) carries a correlationId,
// which the Go server echoes in its answer (ResponseMessage), so that any
// number of requests can be in flight; the page echoes the server's
// correlationId in its own answers too.
"use strict";

const names = {
  echoRequest: "Demo.EchoRequest, Demo",
  echoReply: "Demo.EchoReply, Demo",
  whoAreYou: "Demo.WhoAreYou, Demo",
  iAm: "Demo.IAm, Demo",
  clientList: "Demo.ClientList, Demo",
};

const $ = (id) => document.getElementById(id);
const protocolName = new URLSearchParams(location.search).get("protocol") === "messagepack" ? "messagepack" : "json";
$("protocol").textContent = protocolName;

// The full type name: the part of an assembly-qualified name before the
// first comma outside brackets, which is how Tharga peers match types.
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
const sameType = (a, b) => fullName(a) === fullName(b);

let connection = null;
let nextId = 1;
const pending = new Map(); // correlationId -> {resolve, reject, timer}

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

// request sends a SendMessage and resolves with the answer's message.
function request(type, message, timeoutMs = 10000) {
  const correlationId = "page-" + nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.delete(correlationId);
      reject(new Error("no answer within " + timeoutMs + " ms"));
    }, timeoutMs);
    pending.set(correlationId, { type, resolve, reject, timer });
    connection
      .send("SendMessage", { type, payload: JSON.stringify(message), correlationId, timeoutMs })
      .catch((e) => {
        clearTimeout(timer);
        pending.delete(correlationId);
        reject(e);
      });
  });
}

function onResponse(w) {
  const p = pending.get(w.correlationId);
  if (!p) return; // late or unknown: dropped
  pending.delete(w.correlationId);
  clearTimeout(p.timer);
  const message = JSON.parse(w.payload);
  // The Tharga error answer: the request's own type and {"Error": "..."}.
  if (sameType(w.type, p.type) && typeof message.Error === "string") {
    p.reject(new Error(message.Error));
  } else {
    p.resolve(message);
  }
}

// The page's handlers for the server's requests, by full type name.
const requestHandlers = {
  [fullName(names.whoAreYou)]: () => {
    const name = $("name").value;
    const li = document.createElement("li");
    li.textContent = "The server asked who I am; I answered " + JSON.stringify(name) + ".";
    $("asked").appendChild(li);
    return { type: names.iAm, message: { Name: name, UserAgent: navigator.userAgent } };
  },
};

function onRequest(w) {
  let answer;
  const handler = requestHandlers[fullName(w.type)];
  try {
    if (!handler) throw new Error(`Cannot find handler for type '${fullName(w.type)}'.`);
    const res = handler(JSON.parse(w.payload));
    answer = { type: res.type, payload: JSON.stringify(res.message) };
  } catch (e) {
    answer = { type: w.type, payload: JSON.stringify({ Error: e.message }) };
  }
  if (w.correlationId !== undefined) answer.correlationId = w.correlationId;
  connection.send("ResponseMessage", answer);
}

function onPost(w) {
  if (!sameType(w.type, names.clientList)) return;
  const list = JSON.parse(w.payload).Clients || [];
  const ul = $("clients");
  ul.replaceChildren(
    ...list.map((c) => {
      const li = document.createElement("li");
      li.textContent = c.Name;
      li.title = c.ConnectionID;
      if (connection && c.ConnectionID === connection.connectionId) li.textContent += " (you)";
      return li;
    })
  );
  $("count").textContent = String(list.length);
}

async function connect() {
  $("connect").disabled = true;
  let builder = new signalR.HubConnectionBuilder()
    // A browser cannot put headers on a WebSocket: the key goes through
    // accessTokenFactory (Authorization on negotiate, access_token on the
    // WebSocket URL).
    .withUrl("/hub", { accessTokenFactory: () => $("key").value })
    .withAutomaticReconnect()
    .configureLogging(signalR.LogLevel.Warning);
  if (protocolName === "messagepack") {
    builder = builder.withHubProtocol(new signalR.protocols.msgpack.MessagePackHubProtocol());
  }
  connection = builder.build();
  // Handlers go on before start.
  connection.on("PostMessage", onPost);
  connection.on("SendMessage", onRequest);
  connection.on("ResponseMessage", onResponse);
  connection.onreconnecting(() => setStatus("reconnecting"));
  connection.onreconnected(() => setStatus("connected"));
  connection.onclose((e) => {
    setStatus("disconnected" + (e ? ": " + e.message : ""), !!e);
    $("send").disabled = true;
    $("connect").disabled = false;
  });
  setStatus("connecting");
  try {
    await connection.start();
    setStatus("connected");
    $("send").disabled = false;
  } catch (e) {
    const refused = /\b401\b/.test(String(e));
    setStatus((refused ? "refused: wrong API key" : "failed") + " (" + e.message + ")", true);
    $("connect").disabled = false;
  }
}

async function send() {
  $("answer").textContent = "…";
  $("answer").className = "";
  try {
    const reply = await request(names.echoRequest, { Text: $("message").value });
    $("answer").textContent = reply.Text;
  } catch (e) {
    $("answer").textContent = "error: " + e.message;
    $("answer").className = "error";
  }
}

$("connect").addEventListener("click", connect);
$("send").addEventListener("click", send);
