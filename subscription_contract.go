package communication

import "github.com/tharga/communication-go/internal/wire"

// subscriptionStateChangedName is the wire name of the .NET contract
// Tharga.Communication.Contract.SubscriptionStateChanged. The record lives
// in the Tharga.Communication assembly (namespace
// Tharga.Communication.Contract), and a .NET receiver resolves a type by
// full name and assembly: this name resolves there. A .NET sender writes
// the assembly's version, culture and key token after it, which are
// matched away here like any other name's.
const subscriptionStateChangedName = "Tharga.Communication.Contract.SubscriptionStateChanged, Tharga.Communication"

// subscriptionStateChanged is the payload of the contract: a topic/key
// whose subscriber count crossed 0↔1. Key is null for a keyless
// subscription.
type subscriptionStateChanged struct {
	Topic          string
	Key            *string
	HasSubscribers bool
}

// appendSubscriptionPayload appends the contract's payload as
// System.Text.Json writes the .NET record with default options: its
// properties in declaration order, PascalCase, strings escaped by its
// default encoder, a null Key for a keyless subscription (key ""):
//
//	{"Topic":"MyApp.FarmDetails","Key":"42","HasSubscribers":true}
func appendSubscriptionPayload(dst []byte, topic, key string, has bool) []byte {
	dst = append(dst, `{"Topic":`...)
	dst = wire.AppendSTJString(dst, topic)
	dst = append(dst, `,"Key":`...)
	if key == "" {
		dst = append(dst, "null"...)
	} else {
		dst = wire.AppendSTJString(dst, key)
	}
	if has {
		return append(dst, `,"HasSubscribers":true}`...)
	}
	return append(dst, `,"HasSubscribers":false}`...)
}

// subscriptionWrapper is the PostMessage wrapper of one transition.
func subscriptionWrapper(topic, key string, has bool) wire.Wrapper {
	return wire.Wrapper{Type: subscriptionStateChangedName, Payload: appendSubscriptionPayload(nil, topic, key, has)}
}
