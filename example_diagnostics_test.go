package communication_test

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	communication "github.com/tharga/communication-go"
)

// The diagnostics page mounted by the application, behind its own
// authentication: the library mounts nothing but the hub.
func ExampleServer_DiagnosticsHandler() {
	srv, _ := communication.AddServer()
	defer srv.Close()
	mux := http.NewServeMux()
	srv.Mount(mux)
	operators := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, pass, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(pass), []byte("operator-secret")) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="operators"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	mux.Handle("GET /ops/communication", operators(srv.DiagnosticsHandler(communication.WithDiagnosticsLimit(200))))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	client, _ := communication.AddClient(communication.WithServerAddress(hs.URL), communication.WithClientMachine("worker-1"))
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/ops/communication?format=json", nil)
	req.SetBasicAuth("ops", "operator-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var d struct {
		ConnectedCount int `json:"connectedCount"`
		Clients        []struct {
			Machine string `json:"machine"`
		} `json:"clients"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&d)
	fmt.Println(d.ConnectedCount, d.Clients[0].Machine)
	// Output: 1 worker-1
}
