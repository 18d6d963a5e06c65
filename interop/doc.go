// Package interop holds the interoperability tests of
// github.com/tharga/communication-go against the peers it must work with:
//
//   - .NET Tharga peers, played by fakes written here that send, frame by
//     frame over real WebSockets, the exact frames of the .NET library
//     (dotnet_*_test.go): a .NET client against our Server and a .NET
//     server against our Client. They test what the frames say; a change
//     in the .NET library is not seen until the frames are updated.
//   - The official SignalR JavaScript client, @microsoft/signalr and
//     @microsoft/signalr-protocol-msgpack (code this module did not
//     write), run in Node (js_test.go, js/peer.cjs), in the JSON and
//     MessagePack hub protocols.
//
// The browser example (examples/browser) carries its own end-to-end test
// in headless Chromium.
//
// Run them with `npm ci` at the module root, then `go test ./interop/...`.
// Without node or the npm packages the JavaScript tests skip, except with
// CI=true, where they fail.
package interop
