// Package redis joins Tharga Communication servers into a cluster over
// Redis (github.com/redis/go-redis/v9): a communication.Backplane that
// carries broadcasts, posts and requests between nodes and keeps the
// directory of which node holds which connection, and a
// communication.ClientRepository that keeps every node's client records
// in one place. With WithDirect, what one node sends to another travels
// on a TCP link between the two, Redis staying the directory.
//
// It is its own module, so that a single-node user of
// github.com/tharga/communication-go never has go-redis in its build or
// its module graph.
package redis
