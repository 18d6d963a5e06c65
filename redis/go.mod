module github.com/tharga/communication-go/redis

go 1.26.0

replace github.com/tharga/communication-go => ../
