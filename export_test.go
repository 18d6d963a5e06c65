package communication

import "time"

// Hooks for the black-box tests.

// JitteredDelay is the jitter applied to one reconnect delay.
var JitteredDelay = jittered

// StableAfter is how long a connection of c must stay up for the reconnect
// delays to start again from the first.
func StableAfter(c *Client) time.Duration { return c.stableAfter }
