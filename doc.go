// Package communication is typed messaging between one server and many
// connected clients over SignalR: fire-and-forget posts and
// request-response in both directions, automatic reconnection, and wire
// compatibility with the .NET library Tharga.Communication and the official
// SignalR clients.
//
// # Server
//
// AddServer builds a [Server], an [http.Handler] that you mount on your own
// mux; the library never owns the listener:
//
//	srv, err := communication.AddServer()
//	communication.HandleSend(srv.Handlers(), communication.SendHandlerFunc[Ping, Pong](
//		func(ctx context.Context, p Ping) (Pong, error) { return Pong{Reply: p.Message}, nil }))
//	srv.Mount(mux) // "/hub" and "/hub/negotiate"
//
// The server posts to one client ([Server.Post], or by instance
// [Server.PostToInstance]), to a set of connections ([Server.PostTo]), to
// all ([Server.PostAll]) or to all but one ([Server.PostAllExcept]: a
// handler relaying to the others what its sender posted), and sends
// requests to one ([Send] with [Server.To] or [Server.ToInstance]). A
// handler finds the typed record of a client with [Lookup]. Shutdown stops
// it gracefully.
//
// # Client
//
// AddClient builds a [Client]. Start either connects and returns nil, or
// returns an error and leaves nothing running. Once connected, the client
// stays connected, reconnecting along its delays (0s, 2s, 10s, 30s, then
// every 30s, each jittered by ±50%) until Close; the delays start again
// from the first only after a connection that lasted. Its state, with the
// cause of every change, is observable with WithStateHandler and
// IsConnected. Each Client has its own instance id (X-Client-Instance).
//
//	c, err := communication.AddClient(communication.WithServerAddress("https://host:5001"))
//	err = c.Start(ctx)
//	pong, err := communication.Send[Pong](ctx, c, Ping{Message: "hi"})
//
// # Handlers
//
// [PostHandler] and [SendHandler] are generic interfaces with func adapters
// ([PostHandlerFunc], [SendHandlerFunc]). They are registered into a
// [Handlers] set, keyed by message type; a package can build its own set
// and hand it over in one call with [WithHandlers]. A handler learns who
// sent the message with [SenderFrom].
//
// # Wire names
//
// Each message travels as {"type": name, "payload": json}. The default name
// of a Go type is its package path and name ([TypeName]); give a type its
// .NET assembly-qualified name with [WithName], [WithResponseName] or
// [RegisterName] to talk to .NET peers. Incoming names match by full type
// name, whatever assembly, version, culture or key token follows. Payloads
// are encoding/json: fields without tags travel PascalCase, which is what
// .NET's System.Text.Json expects.
//
// # Requests and correlation
//
// Any number of requests may be in flight on a connection, in both
// directions. Each carries a correlation id that this library echoes in the
// answer. A .NET Tharga peer echoes nothing, so answers without an id are
// matched by what is safe with it: a .NET server answers one connection's
// requests in order, so the oldest waiting request takes the answer (a
// request whose caller gave up keeps its place, so that its late answer is
// dropped rather than given to the next); a .NET client answers in any
// order, so requests to it that could be answered with the same type are
// sent one at a time. A late answer is always dropped.
//
// # Subscriptions
//
// A server-side consumer (a dashboard page) tells the clients what it
// wants with [Subscribe], for a message type and optionally some keys
// (entity ids); producers check [HasSubscribers] or post with
// [Client.PostIfSubscribed] and skip work nobody would see. Subscriptions
// are counted per topic/key and clients are told only of the 0↔1
// transitions, in order, with the .NET contract
// Tharga.Communication.Contract.SubscriptionStateChanged, so .NET and
// JavaScript clients follow them too; a client that connects gets the
// active set at once. A subscription is a hint, not a filter: posts reach
// the server's handlers either way. Counts are per process (see
// [Server.Subscriptions]).
//
// # Timeouts and cancellation
//
// Every blocking call takes a context. A request waits until its context's
// deadline, or the send timeout (default 60s) when it has none; the
// deadline travels with the request, so that the remote handler's context
// ends when the caller stops waiting. A dropped connection fails the
// requests pending on it at once with [ErrConnectionLost].
//
// # Ordering and concurrency
//
// Posts from one sender are handled one at a time in the order they were
// sent; posts to one connection are delivered in the order they were made.
// Requests run concurrently, up to WithMaxRequestsPerConnection per connection
// and WithMaxServerHandlers across the server; past either bound the
// connection stops reading until a handler finishes (backpressure), and
// stays connected meanwhile. The handlers of a connection that drops see
// their context end. Sends are queued per connection up to
// WithSendQueueBytes, and everything written to a connection counts against
// that bound.
//
// # Limits and hostile peers
//
// Every resource a peer can make the server hold is bounded: negotiations
// (kept until their transport request takes them, at most the handshake
// timeout, and only the few identity values a record stores, each at most
// 256 bytes); a hub message (WithMaxMessageBytes: a larger one is skipped as
// it arrives and dropped, whatever its size, and the connection goes on);
// the bytes queued for a connection; the handlers running per connection
// and across the server; the POSTs waiting on a server-sent-events session.
// A peer that stops reading is dropped by the write timeout, on WebSockets
// and server-sent events alike. A handshake the library does not accept
// closes the connection with an error answer; a negotiate token opens one
// connection, once. A message larger than the receiving side accepts is
// refused at the sender with [ErrTooLarge]: each end announces its limit
// when it connects.
//
// # Errors
//
// Errors match the sentinels [ErrTimeout], [ErrNotConnected], [ErrClosed],
// [ErrConnectionLost], [ErrUnknownType], [ErrTooLarge], [ErrSlowConsumer]
// with errors.Is (a request pending on a connection dropped for not reading
// matches both ErrConnectionLost and ErrSlowConsumer); a failure reported
// by the remote side is a [*RemoteError], with a [Code] ([CodeOf]). A send
// handler chooses the code and message its caller sees by returning
// [NewError] (code "not_found", say); its other errors reach the caller as
// [CodeHandlerError] with their text. A handler that panics is answered
// with an error and never takes the process down.
//
// # Scale-out
//
// [WithBackplane] joins Servers into a cluster: [Server.PostAll] and
// [Server.PostAllExcept] reach the clients of every node, [Server.Post],
// [Server.PostTo], [Server.PostToInstance], [Server.To] and
// [Server.ToInstance] reach a client wherever it is connected (the node that holds it runs the request), and subscription
// counts are cluster-wide. Requests fail at once when nobody holds the
// connection, when its client or node leaves, and when this node loses the
// cluster. [MemoryBackplane] joins the Servers of one process; the module
// github.com/tharga/communication-go/redis joins processes over Redis, and
// keeps client records there. Delivery between nodes is at most once.
//
// # Observability
//
// Metrics and spans go through the OpenTelemetry API, to the global
// providers unless [WithMeterProvider] and [WithTracerProvider] say
// otherwise: the stable SignalR server conventions
// (signalr.server.active_connections, signalr.server.connection.duration)
// and the package's own, prefixed tharga.communication (messages by kind
// and registered type, requests by outcome, pending requests, refusals,
// slow consumers, reconnects, the Backplane). Each [Send] has a span on
// both ends, joined by the W3C trace context that travels with the
// request. [Server.Diagnostics] is a snapshot of clients, handlers,
// subscriptions and pending requests, and [Server.DiagnosticsHandler]
// serves it as JSON and as a page for operators, mounted by the
// application behind its own authentication.
//
// # Transport
//
// The transport is github.com/philippseith/signalr. It runs the SignalR
// session (handshake, keep-alive, timeouts, close). This package answers
// negotiate and accepts WebSockets and server-sent events itself, and reads
// and writes the three protocol methods itself, so that it can keep their
// order, return errors, bound memory and refuse every other method a client
// might try to invoke. Negotiations are per server: behind a load balancer,
// route a client's negotiate and transport request to the same node
// (sticky sessions), or have clients skip negotiation on WebSockets.
package communication
