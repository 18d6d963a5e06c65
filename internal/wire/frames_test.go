package wire

// The example frames of PROTOCOL.md ("Example frames"), without their
// record separators, and the values they carry.

const (
	frameHandshake         = `{"protocol":"json","version":1}`
	frameHandshakeResponse = `{}`
	framePing              = `{"type":6}`

	typeNotification = "MyApp.MyNotification, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	typePingRequest  = "MyApp.PingRequest, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
	typePingResponse = "MyApp.PingResponse, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null"
)

// exampleInvocations are the invocation frames of PROTOCOL.md with the
// target and wrapper each carries.
var exampleInvocations = []struct {
	name    string
	frame   string
	target  string
	wrapper Wrapper
}{
	{
		name:    "post notification",
		frame:   `{"type":1,"target":"PostMessage","arguments":[{"type":"MyApp.MyNotification, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null","payload":"{\"Text\":\"Hello from client\"}"}]}`,
		target:  TargetPost,
		wrapper: Wrapper{Type: typeNotification, Payload: []byte(`{"Text":"Hello from client"}`)},
	},
	{
		name:    "send ping request",
		frame:   `{"type":1,"target":"SendMessage","arguments":[{"type":"MyApp.PingRequest, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null","payload":"{\"Message\":\"Ping\"}"}]}`,
		target:  TargetSend,
		wrapper: Wrapper{Type: typePingRequest, Payload: []byte(`{"Message":"Ping"}`)},
	},
	{
		name:    "response",
		frame:   `{"type":1,"target":"ResponseMessage","arguments":[{"type":"MyApp.PingResponse, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null","payload":"{\"Reply\":\"Pong: Ping\"}"}]}`,
		target:  TargetResponse,
		wrapper: Wrapper{Type: typePingResponse, Payload: []byte(`{"Reply":"Pong: Ping"}`)},
	},
	{
		name:    "error response",
		frame:   `{"type":1,"target":"ResponseMessage","arguments":[{"type":"MyApp.PingRequest, MyApp, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null","payload":"{\"Error\":\"Cannot find handler for type 'MyApp.PingRequest'.\"}"}]}`,
		target:  TargetResponse,
		wrapper: Wrapper{Type: typePingRequest, Payload: []byte(`{"Error":"Cannot find handler for type 'MyApp.PingRequest'."}`)},
	},
}

// exampleRecords are all example frames of PROTOCOL.md plus frames as
// System.Text.Json and this library write them, used as fuzz seeds.
func exampleRecords() []string {
	out := []string{frameHandshake, frameHandshakeResponse, framePing,
		// System.Text.Json's default encoder escapes quotes, '+' and '\''.
		`{"type":1,"target":"SendMessage","arguments":[{"type":"MyApp.Outer\u002BInner, MyApp","payload":"{\u0022Error\u0022:\u0022it\u0027s\u0022}"}]}`,
		`{"type":1,"target":"SendMessage","arguments":[{"type":"T","payload":"{}","correlationId":"c-1","timeoutMs":30000}]}`,
		`{"type":1,"invocationId":"7","target":"PostMessage","arguments":[{"Type":"T","Payload":{"A":[1,2]}}],"streamIds":["1"]}`,
		`{"type":3,"invocationId":"7","error":"boom"}`,
		`{"type":7,"error":"bye","allowReconnect":true}`,
		`{"error":"refused"}`,
	}
	for _, e := range exampleInvocations {
		out = append(out, e.frame)
	}
	return out
}
