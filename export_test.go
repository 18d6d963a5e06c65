package communication

// Hooks for the black-box tests.

// JitteredDelay is the jitter applied to one reconnect delay.
var JitteredDelay = jittered
