package testrig

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// Talk is a TCP conversation: the client sends a counter every
// millisecond and the server echoes it back.
type Talk struct {
	what      string
	conn, srv net.Conn
	ln        net.Listener
	stopc     chan struct{}
	done      chan TalkStats
}

type TalkStats struct {
	what   string
	rounds int
	Errs   int
	MaxGap time.Duration
}

func (s TalkStats) String() string {
	return fmt.Sprintf("TCP %s: %d round trips, %d errors, longest gap %v",
		s.what, s.rounds, s.Errs, s.MaxGap.Round(time.Microsecond))
}

// StartTalk listens on listen inside server, connects to dial from inside
// client and starts the conversation; what names it in the stats.
func StartTalk(b *testing.B, what string, server *netnsutil.NS, listen string, client *netnsutil.NS, dial string) *Talk {
	tk := &Talk{what: what, stopc: make(chan struct{}), done: make(chan TalkStats, 1)}
	if err := server.Do(func() (err error) { tk.ln, err = net.Listen("tcp", listen); return err }); err != nil {
		b.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := tk.ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
		_, _ = io.Copy(c, c) // echo
	}()
	if err := client.Do(func() (err error) { tk.conn, err = net.DialTimeout("tcp", dial, 2*time.Second); return err }); err != nil {
		tk.ln.Close()
		b.Fatalf("%s: dialing %s: %v", what, dial, err)
	}
	tk.srv = <-accepted
	if tk.srv == nil {
		b.Fatal("accept failed")
	}
	go tk.run()
	return tk
}

func (tk *Talk) run() {
	st := TalkStats{what: tk.what}
	buf := make([]byte, 8)
	last := time.Now()
	for i := 0; ; i++ {
		select {
		case <-tk.stopc:
			// A stall at the very end counts too.
			if gap := time.Since(last); gap > st.MaxGap {
				st.MaxGap = gap
			}
			tk.done <- st
			return
		default:
		}
		msg := fmt.Sprintf("%08d", i%100000000)
		tk.conn.SetDeadline(time.Now().Add(time.Second))
		_, err := io.WriteString(tk.conn, msg)
		if err == nil {
			_, err = io.ReadFull(tk.conn, buf)
		}
		if err != nil || string(buf) != msg {
			st.Errs++
			continue
		}
		st.rounds++
		if gap := time.Since(last); gap > st.MaxGap {
			st.MaxGap = gap
		}
		last = time.Now()
		time.Sleep(time.Millisecond)
	}
}

func (tk *Talk) Stop() TalkStats {
	close(tk.stopc)
	st := <-tk.done
	tk.conn.Close()
	tk.srv.Close()
	tk.ln.Close()
	return st
}
