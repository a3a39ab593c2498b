// devmapper-devices DB: the devices containerd's built-in devmapper snapshotter has in its pool metadata
// (root_path/<pool_name>.db), one JSON object a line: {"name","deviceId","parent","state","error"}. Read with
// containerd's own code (snapshots/devmapper, Debian's packaged 1.6.20 sources), so the states are named as
// containerd names them (Faulty: a device an interrupted operation left). Open it only while containerd is
// stopped: bolt holds the file locked while containerd runs.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/containerd/containerd/snapshots/devmapper"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: devmapper-devices DB")
		os.Exit(2)
	}
	if _, err := os.Stat(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	md, err := devmapper.NewPoolMetadata(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer md.Close()
	enc := json.NewEncoder(os.Stdout)
	err = md.WalkDevices(context.Background(), func(d *devmapper.DeviceInfo) error {
		return enc.Encode(map[string]interface{}{"name": d.Name, "deviceId": d.DeviceID, "parent": d.ParentName, "state": d.State.String(), "error": d.Error})
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
