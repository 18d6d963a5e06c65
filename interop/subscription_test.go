package interop_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	communication "github.com/tharga/communication-go"
)

// stateChangedName is the .NET name of the contract
// Tharga.Communication.Contract.SubscriptionStateChanged, which lives in
// the Tharga.Communication assembly, as our server writes it.
const stateChangedName = "Tharga.Communication.Contract.SubscriptionStateChanged, Tharga.Communication"

// stateChangedDotNet is the name as a .NET server writes it
// (typeof(SubscriptionStateChanged).AssemblyQualifiedName).
const stateChangedDotNet = stateChangedName + ", Version=1.2.0.0, Culture=neutral, PublicKeyToken=null"

// stateChanged is the payload of the contract as System.Text.Json writes
// the .NET record: Topic, Key (null when keyless), HasSubscribers.
func stateChanged(topic string, key any, has bool) string {
	return stjPayload("Topic", topic, "Key", key, "HasSubscribers", has)
}

// TestDotNetClientSubscriptionFrames: what a .NET client gets when the
// server's subscriptions change, and when it connects while some are
// active: a PostMessage of the contract under a name its receiver
// resolves (full name and assembly), with the payload byte for byte as
// System.Text.Json writes the record, escaping included.
func TestDotNetClientSubscriptionFrames(t *testing.T) {
	gs, _ := dotNetTypesServer(t)
	c := dialDotNet(t, gs, dotNetClientHeaders(""))
	ctx := context.Background()

	// A nested .NET type: System.Text.Json writes its '+' as \u002B.
	sub, err := communication.Subscribe[Shipped](ctx, gs.Server, "order-1")
	require.NoError(t, err)
	typ, payload := requireInvocation(t, c.next(wait), "PostMessage")
	require.Equal(t, stateChangedName, typ)
	parts := strings.Split(typ, ",")
	require.Equal(t, []string{"Tharga.Communication.Contract.SubscriptionStateChanged", " Tharga.Communication"}, parts,
		"the .NET receiver resolves the first two parts with Type.GetType")
	require.Equal(t, stateChanged("Contoso.Orders.OrderEvents+Shipped", "order-1", true), payload)
	require.Contains(t, payload, `OrderEvents\u002BShipped`)
	requirePascalCase(t, payload)

	keyless, err := communication.Subscribe[Notice](ctx, gs.Server)
	require.NoError(t, err)
	_, payload = requireInvocation(t, c.next(wait), "PostMessage")
	require.Equal(t, `{"Topic":"Interop.Notice","Key":null,"HasSubscribers":true}`, payload)

	// A .NET client that connects now gets the active set at once, as the
	// same contract (the original server sends nothing here).
	late := dialDotNet(t, gs, dotNetClientHeaders(""))
	_, payload = requireInvocation(t, late.next(wait), "PostMessage")
	require.Equal(t, stateChanged("Contoso.Orders.OrderEvents+Shipped", "order-1", true), payload)
	_, payload = requireInvocation(t, late.next(wait), "PostMessage")
	require.Equal(t, stateChanged("Interop.Notice", nil, true), payload)

	require.NoError(t, sub.Close())
	require.NoError(t, keyless.Close())
	for _, conn := range []*dotNetClient{c, late} {
		_, payload = requireInvocation(t, conn.next(wait), "PostMessage")
		require.Equal(t, stateChanged("Contoso.Orders.OrderEvents+Shipped", "order-1", false), payload)
		_, payload = requireInvocation(t, conn.next(wait), "PostMessage")
		require.Equal(t, stateChanged("Interop.Notice", nil, false), payload)
	}
}

// TestGoClientReadsDotNetSubscriptionFrames: our client follows the
// SubscriptionStateChanged posts of a .NET server, as it writes them, and
// posts only what somebody there subscribes to.
func TestGoClientReadsDotNetSubscriptionFrames(t *testing.T) {
	s := newFakeDotNetServer(t)
	changes := make(chan communication.SubscriptionChange, 100)
	c := dotNetClientOf(t, s, communication.WithSubscriptionHandler(func(ch communication.SubscriptionChange) { changes <- ch }))
	require.NoError(t, communication.RegisterName[Shipped](c.Handlers(), nestedName))
	conn := startAgainst(t, s, c)
	ctx := ctxFor(t, wait)

	conn.write(invocation("PostMessage", stateChangedDotNet, stateChanged("Interop.Greeting", "7", true)))
	require.Equal(t, communication.SubscriptionChange{Topic: "Interop.Greeting", Key: "7", HasSubscribers: true},
		recv(t, changes, wait, "the change"))
	require.True(t, communication.HasSubscribers[Greeting](c, "7"))
	require.False(t, communication.HasSubscribers[Greeting](c, "8"))
	require.False(t, communication.HasSubscribers[Greeting](c))

	sent, err := c.PostIfSubscribed(ctx, Greeting{Text: "for 8", N: 8}, "8")
	require.NoError(t, err)
	require.False(t, sent)
	sent, err = c.PostIfSubscribed(ctx, Greeting{Text: "for 7", N: 7}, "7")
	require.NoError(t, err)
	require.True(t, sent)
	typ, payload := requireInvocation(t, conn.next(wait), "PostMessage")
	require.Equal(t, greetingName, typ)
	require.JSONEq(t, `{"Text":"for 7","N":7}`, payload, "the post for 8 never went")

	// Keyless, and a nested type whose '+' System.Text.Json escapes.
	conn.write(invocation("PostMessage", stateChangedDotNet, stateChanged("Interop.Greeting", nil, true)))
	conn.write(invocation("PostMessage", stateChangedDotNet, stateChanged("Contoso.Orders.OrderEvents+Shipped", nil, true)))
	require.Equal(t, communication.SubscriptionChange{Topic: "Interop.Greeting", HasSubscribers: true}, recv(t, changes, wait, "the change"))
	require.Equal(t, communication.SubscriptionChange{Topic: "Contoso.Orders.OrderEvents+Shipped", HasSubscribers: true},
		recv(t, changes, wait, "the change"))
	require.True(t, communication.HasSubscribers[Greeting](c, "8"))
	require.True(t, communication.HasSubscribers[Shipped](c, "any"))

	conn.write(invocation("PostMessage", stateChangedDotNet, stateChanged("Interop.Greeting", "7", false)))
	require.Equal(t, communication.SubscriptionChange{Topic: "Interop.Greeting", Key: "7"}, recv(t, changes, wait, "the change"))
	require.True(t, communication.HasSubscribers[Greeting](c, "7"), "the keyless subscription still matches")

	// The connection drops: the set is cleared; the new connection starts
	// empty (a .NET server sends no snapshot).
	conn.close()
	got := map[communication.SubscriptionChange]bool{recv(t, changes, wait, "a change"): true, recv(t, changes, wait, "a change"): true}
	require.Equal(t, map[communication.SubscriptionChange]bool{
		{Topic: "Interop.Greeting"}:                   true,
		{Topic: "Contoso.Orders.OrderEvents+Shipped"}: true,
	}, got)
	s.accept()
	require.False(t, communication.HasSubscribers[Greeting](c, "7"))
	require.False(t, communication.HasSubscribers[Shipped](c))
}

// TestJSClientSeesSubscriptions: the official JavaScript client gets the
// SubscriptionStateChanged posts, the snapshot when it connects included,
// in both hub protocols.
func TestJSClientSeesSubscriptions(t *testing.T) {
	for _, proto := range jsProtocols {
		t.Run(proto, func(t *testing.T) {
			gs := newServer(t)
			ctx := context.Background()
			keyless, err := communication.Subscribe[Notice](ctx, gs.Server)
			require.NoError(t, err)

			js := startJS(t, jsConfig{URL: gs.URL + "/hub", Protocol: proto})
			gs.waitConnected(t, js.started())
			post := func() (string, string) {
				w := wrapperOf(t, js.Expect("post", wait))
				payload, ok := w["payload"].(string)
				require.True(t, ok, "the payload is not a string: %#v", w["payload"])
				return w["type"].(string), payload
			}
			typ, payload := post()
			require.Equal(t, stateChangedName, typ)
			require.Equal(t, stateChanged("Interop.Notice", nil, true), payload, "the snapshot")

			keyed, err := communication.Subscribe[Notice](ctx, gs.Server, "42")
			require.NoError(t, err)
			_, payload = post()
			require.Equal(t, stateChanged("Interop.Notice", "42", true), payload)
			require.NoError(t, keyed.Close())
			_, payload = post()
			require.Equal(t, stateChanged("Interop.Notice", "42", false), payload)
			require.NoError(t, keyless.Close())
			_, payload = post()
			require.Equal(t, stateChanged("Interop.Notice", nil, false), payload)
		})
	}
}
