package restart
