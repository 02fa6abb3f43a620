package resolvconf

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/opencnm/libnetwork/types"
)

const pommes = "search pommesfrites.fr\nnameserver 12.34.56.78\nnameserver 2001:4860:4860::8888\n"

func TestBuild(t *testing.T) {
	tests := []struct {
		name string
		host string
		o    Overrides
		s    Settings
		want string
		ext  []ExtServer
	}{
		{
			name: "upstream example, embedded, no IPv6",
			host: pommes,
			s:    Settings{Embedded: true},
			want: "search pommesfrites.fr\nnameserver 127.0.0.11\noptions ndots:0\n",
			ext:  []ExtServer{{Addr: mustAddr("12.34.56.78")}},
		},
		{
			name: "upstream example, embedded, IPv6 keeps the v6 nameserver",
			host: pommes,
			s:    Settings{Embedded: true, IPv6: true},
			want: "search pommesfrites.fr\nnameserver 127.0.0.11\nnameserver 2001:4860:4860::8888\noptions ndots:0\n",
			ext:  []ExtServer{{Addr: mustAddr("12.34.56.78")}, {Addr: mustAddr("2001:4860:4860::8888")}},
		},
		{
			name: "not embedded, no IPv6: v6 dropped",
			host: pommes,
			want: "search pommesfrites.fr\nnameserver 12.34.56.78\n",
			ext:  []ExtServer{{Addr: mustAddr("12.34.56.78")}},
		},
		{
			name: "not embedded, IPv6 kept",
			host: pommes,
			s:    Settings{IPv6: true},
			want: pommes,
			ext:  []ExtServer{{Addr: mustAddr("12.34.56.78")}, {Addr: mustAddr("2001:4860:4860::8888")}},
		},
		{
			name: "loopback removed from the file but returned flagged",
			host: "nameserver 127.0.0.1\nnameserver 10.0.0.1\nnameserver ::1\nnameserver 127.1.2.3\nnameserver ::ffff:127.0.0.1\n",
			s:    Settings{IPv6: true},
			want: "nameserver 10.0.0.1\n",
			ext: []ExtServer{
				{Addr: mustAddr("127.0.0.1"), HostLoopback: true},
				{Addr: mustAddr("10.0.0.1")},
				{Addr: mustAddr("::1"), HostLoopback: true},
				{Addr: mustAddr("127.1.2.3"), HostLoopback: true},
				{Addr: mustAddr("::ffff:127.0.0.1"), HostLoopback: true},
			},
		},
		{
			name: "only loopback: no nameserver, no public fallback",
			host: "nameserver 127.0.0.53\noptions edns0\n",
			want: "options edns0\n",
			ext:  []ExtServer{{Addr: mustAddr("127.0.0.53"), HostLoopback: true}},
		},
		{
			name: "empty host file",
			want: "",
		},
		{
			name: "empty host file, embedded",
			s:    Settings{Embedded: true},
			want: "nameserver 127.0.0.11\noptions ndots:0\n",
		},
		{
			name: "zoned link-local v6 dropped without IPv6",
			host: "nameserver fe80::1%eth0\nnameserver 10.0.0.1\n",
			want: "nameserver 10.0.0.1\n",
			ext:  []ExtServer{{Addr: mustAddr("10.0.0.1")}},
		},
		{
			name: "override nameservers only keeps host search and options",
			host: "search host.example\nnameserver 10.0.0.1\noptions rotate\n",
			o:    Overrides{Nameservers: []string{"192.0.2.1", "2001:db8::53"}},
			want: "search host.example\nnameserver 192.0.2.1\nnameserver 2001:db8::53\noptions rotate\n",
			ext:  []ExtServer{{Addr: mustAddr("192.0.2.1")}},
		},
		{
			name: "user loopback nameserver written as given (resolver in the container)",
			host: "nameserver 10.0.0.1\n",
			o:    Overrides{Nameservers: []string{"127.0.0.1"}},
			want: "nameserver 127.0.0.1\n",
			ext:  []ExtServer{{Addr: mustAddr("127.0.0.1"), HostLoopback: true}},
		},
		{
			name: "override search only",
			host: "search host.example\nnameserver 10.0.0.1\noptions rotate\n",
			o:    Overrides{Search: []string{"a.example", "b.example"}},
			want: "search a.example b.example\nnameserver 10.0.0.1\noptions rotate\n",
			ext:  []ExtServer{{Addr: mustAddr("10.0.0.1")}},
		},
		{
			name: "search dot means none",
			host: "search host.example\nnameserver 10.0.0.1\n",
			o:    Overrides{Search: []string{"."}},
			want: "nameserver 10.0.0.1\n",
			ext:  []ExtServer{{Addr: mustAddr("10.0.0.1")}},
		},
		{
			name: "override options only",
			host: "search host.example\nnameserver 10.0.0.1\noptions rotate\n",
			o:    Overrides{Options: []string{"timeout:2", "attempts:3"}},
			want: "search host.example\nnameserver 10.0.0.1\noptions timeout:2 attempts:3\n",
			ext:  []ExtServer{{Addr: mustAddr("10.0.0.1")}},
		},
		{
			name: "embedded keeps user ndots",
			host: pommes,
			o:    Overrides{Options: []string{"ndots:5"}},
			s:    Settings{Embedded: true},
			want: "search pommesfrites.fr\nnameserver 127.0.0.11\noptions ndots:5\n",
			ext:  []ExtServer{{Addr: mustAddr("12.34.56.78")}},
		},
		{
			name: "embedded keeps host ndots",
			host: "nameserver 10.0.0.1\noptions ndots:2 rotate\n",
			s:    Settings{Embedded: true},
			want: "nameserver 127.0.0.11\noptions ndots:2 rotate\n",
			ext:  []ExtServer{{Addr: mustAddr("10.0.0.1")}},
		},
		{
			name: "embedded appends ndots:0 to other options",
			host: "nameserver 10.0.0.1\noptions rotate\n",
			s:    Settings{Embedded: true},
			want: "nameserver 127.0.0.11\noptions rotate ndots:0\n",
			ext:  []ExtServer{{Addr: mustAddr("10.0.0.1")}},
		},
		{
			name: "invalid host ndots dropped, not an error",
			host: "nameserver 10.0.0.1\noptions ndots:x rotate\n",
			s:    Settings{Embedded: true},
			want: "nameserver 127.0.0.11\noptions rotate ndots:0\n",
			ext:  []ExtServer{{Addr: mustAddr("10.0.0.1")}},
		},
		{
			name: "embedded with user servers and IPv6",
			o:    Overrides{Nameservers: []string{"192.0.2.1", "::1", "2001:db8::53"}},
			s:    Settings{Embedded: true, IPv6: true},
			want: "nameserver 127.0.0.11\nnameserver 2001:db8::53\noptions ndots:0\n",
			ext: []ExtServer{
				{Addr: mustAddr("192.0.2.1")},
				{Addr: mustAddr("::1"), HostLoopback: true},
				{Addr: mustAddr("2001:db8::53")},
			},
		},
		{
			name: "other directives kept after options",
			host: "sortlist 130.155.160.0/255.255.240.0\nnameserver 10.0.0.1\n",
			want: "nameserver 10.0.0.1\nsortlist 130.155.160.0/255.255.240.0\n",
			ext:  []ExtServer{{Addr: mustAddr("10.0.0.1")}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ext, err := Build(Parse([]byte(tc.host)), tc.o, tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("content:\n%q\nwant:\n%q", got, tc.want)
			}
			if !slices.Equal(ext, tc.ext) {
				t.Errorf("ext servers = %+v, want %+v", ext, tc.ext)
			}
		})
	}
}

func TestBuildNilOrigin(t *testing.T) {
	got, ext, err := Build(nil, Overrides{Nameservers: []string{"10.0.0.1"}}, Settings{})
	if err != nil || string(got) != "nameserver 10.0.0.1\n" || len(ext) != 1 {
		t.Fatalf("Build(nil) = %q, %v, %v", got, ext, err)
	}
}

func TestBuildDoesNotAliasOrigin(t *testing.T) {
	f := Parse([]byte("nameserver 10.0.0.1\noptions rotate\n"))
	if _, _, err := Build(f, Overrides{}, Settings{Embedded: true}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Options(), []string{"rotate"}) {
		t.Fatalf("Build changed the origin's options: %q", f.Options())
	}
}

func TestBuildInvalid(t *testing.T) {
	tests := []struct {
		name  string
		o     Overrides
		ndots bool
	}{
		{name: "ndots not a number", o: Overrides{Options: []string{"ndots:foo"}}, ndots: true},
		{name: "ndots negative", o: Overrides{Options: []string{"ndots:-1"}}, ndots: true},
		{name: "ndots empty", o: Overrides{Options: []string{"ndots:"}}, ndots: true},
		{name: "ndots fraction", o: Overrides{Options: []string{"rotate", "ndots:1.5"}}, ndots: true},
		{name: "bad server", o: Overrides{Nameservers: []string{"10.0.0.300"}}},
		{name: "empty server", o: Overrides{Nameservers: []string{""}}},
		{name: "search with space", o: Overrides{Search: []string{"a b"}}},
		{name: "search with comment char", o: Overrides{Search: []string{"a#b"}}},
		{name: "empty option", o: Overrides{Options: []string{""}}},
		{name: "option with newline", o: Overrides{Options: []string{"rotate\nnameserver"}}},
	}
	for _, tc := range tests {
		for _, embedded := range []bool{false, true} {
			_, _, err := Build(Parse([]byte(pommes)), tc.o, Settings{Embedded: embedded})
			if !types.IsBadRequest(err) {
				t.Errorf("%s (embedded=%v): error = %v, want BadRequest", tc.name, embedded, err)
				continue
			}
			if tc.ndots && !errors.Is(err, errNdots) {
				t.Errorf("%s: error = %v, want %q", tc.name, err, errNdots)
			}
		}
	}
	// Valid ndots values, including 0 and large ones, pass.
	for _, n := range []string{"ndots:0", "ndots:1", "ndots:15", "ndots:100"} {
		if _, _, err := Build(nil, Overrides{Options: []string{n}}, Settings{Embedded: true}); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// A built file parses back to what was put in.
func TestBuildRoundTrip(t *testing.T) {
	got, _, err := Build(Parse([]byte(pommes)), Overrides{Options: []string{"rotate"}}, Settings{IPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	f := Parse(got)
	if !slices.Equal(f.Search(), []string{"pommesfrites.fr"}) || !slices.Equal(f.Options(), []string{"rotate"}) ||
		!slices.Equal(f.Nameservers(), addrs("12.34.56.78", "2001:4860:4860::8888")) {
		t.Fatalf("round trip: %q", got)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
