// Package interop holds the interoperability tests of
// github.com/tharga/communication-go against peers this module did not
// write:
//
//   - .NET Tharga peers, played frame by frame over real WebSockets with
//     the exact frames of the .NET library (dotnet_*_test.go): a .NET
//     client against our Server and a .NET server against our Client.
//   - The official SignalR JavaScript client, @microsoft/signalr and
//     @microsoft/signalr-protocol-msgpack, run in Node (js_test.go,
//     js/peer.cjs), in the JSON and MessagePack hub protocols.
//
// The browser example (examples/browser) carries its own end-to-end test
// in headless Chromium.
//
// Run them with `npm ci` at the module root, then `go test ./interop/...`.
// Without node or the npm packages the JavaScript tests skip, except with
// CI=true, where they fail.
package interop
