package repositorytest_test

import (
	"testing"

	communication "github.com/tharga/communication-go"
	"github.com/tharga/communication-go/repositorytest"
)

type data struct{ N int }

func TestMemoryRepository(t *testing.T) {
	repositorytest.Run(t, func(t *testing.T) communication.ClientRepository[data] {
		return communication.NewMemoryRepository[data]()
	}, func(i int) data { return data{N: i} })
}
